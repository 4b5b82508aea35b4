/* Receive-side reassembly of one QUIC stream (or CRYPTO stream).
 *
 * Received bytes live in segments sorted by offset (see core.h).  Inserting
 * copies only the parts not held yet (first copy wins): a part that continues
 * a segment is appended to it, anything else becomes a new segment.  Reading
 * copies into the caller's buffer (qr_ra_read_into: the bytes object that
 * pytypes.c returns).  A fully read segment's allocation is kept as a spare
 * and reused by the next new segment, so in-order streaming does not malloc.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

void qr_ra_init(qr_reasm *ra, uint64_t max_offset)
{
    memset(ra, 0, sizeof(*ra));
    ra->max_offset = max_offset;
}

void qr_ra_release(qr_reasm *ra)
{
    size_t i;
    for (i = 0; i < ra->nsegs; i++)
        free(ra->segs[i].mem);
    free(ra->seg_base);
    free(ra->spare);
    qr_ra_init(ra, ra->max_offset);
}

size_t qr_ra_memory(const qr_reasm *ra)
{
    size_t i, total = ra->seg_cap * sizeof(qr_seg) + ra->spare_cap;
    for (i = 0; i < ra->nsegs; i++)
        total += ra->segs[i].cap;
    return total;
}

/* First segment index whose end is above v. */
static size_t seg_search(const qr_reasm *ra, uint64_t v)
{
    size_t lo = 0, hi = ra->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ra->segs[mid].end > v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Keep mem as the spare allocation (the larger of it and the old spare). */
static void recycle(qr_reasm *ra, uint8_t *mem, size_t cap)
{
    if (!ra->spare || cap > ra->spare_cap) {
        free(ra->spare);
        ra->spare = mem;
        ra->spare_cap = cap;
    } else {
        free(mem);
    }
}

static void pop_front(qr_reasm *ra)
{
    ra->segs++;
    if (!--ra->nsegs)
        ra->segs = ra->seg_base;
}

/* Insert a new segment [pos, pos + n) at index i. */
static int new_segment(qr_reasm *ra, size_t i, uint64_t pos, const char *data, size_t n)
{
    size_t head = ra->seg_base ? (size_t)(ra->segs - ra->seg_base) : 0;
    qr_seg *seg;
    uint8_t *mem;
    size_t cap;
    if (head + ra->nsegs + 1 > ra->seg_cap) {
        if (head) {
            memmove(ra->seg_base, ra->segs, ra->nsegs * sizeof(qr_seg));
            ra->segs = ra->seg_base;
        }
        if (ra->nsegs + 1 > ra->seg_cap) {
            size_t ncap = ra->seg_cap ? ra->seg_cap * 2 : 4;
            qr_seg *nb;
            if (ncap > SIZE_MAX / sizeof(qr_seg))
                return QR_ENOMEM;
            nb = realloc(ra->seg_base, ncap * sizeof(qr_seg));
            if (!nb)
                return QR_ENOMEM;
            ra->seg_base = ra->segs = nb;
            ra->seg_cap = ncap;
        }
    }
    if (ra->spare && ra->spare_cap >= n) {
        mem = ra->spare;
        cap = ra->spare_cap;
        ra->spare = NULL;
        ra->spare_cap = 0;
    } else {
        mem = malloc(n);
        if (!mem)
            return QR_ENOMEM;
        cap = n;
    }
    memcpy(mem, data, n);
    if (i < ra->nsegs)
        memmove(ra->segs + i + 1, ra->segs + i, (ra->nsegs - i) * sizeof(qr_seg));
    seg = ra->segs + i;
    seg->start = pos;
    seg->end = pos + n;
    seg->p = seg->mem = mem;
    seg->cap = cap;
    ra->nsegs++;
    return QR_OK;
}

/* Append n bytes to seg, growing it (doubling, at most to `limit` bytes). */
static int append(qr_seg *seg, const char *data, size_t n, uint64_t limit)
{
    size_t len = (size_t)(seg->end - seg->start);
    size_t head = (size_t)(seg->p - seg->mem);
    if (head + len + n > seg->cap) {
        if (head) {
            memmove(seg->mem, seg->p, len);
            seg->p = seg->mem;
        }
        if (len + n > seg->cap) {
            uint64_t ncap = (uint64_t)seg->cap * 2;
            uint8_t *nm;
            if (ncap > limit)
                ncap = limit;
            if (ncap < len + n)
                ncap = len + n;
            if (ncap > (uint64_t)SIZE_MAX / 2)
                return QR_ENOMEM;
            nm = realloc(seg->mem, (size_t)ncap);
            if (!nm)
                return QR_ENOMEM;
            seg->mem = seg->p = nm;
            seg->cap = (size_t)ncap;
        }
    }
    memcpy(seg->p + len, data, n);
    seg->end += n;
    return QR_OK;
}

static void update_readable(qr_reasm *ra)
{
    uint64_t pos = ra->read_offset + ra->readable;
    size_t i = seg_search(ra, pos);
    while (i < ra->nsegs && ra->segs[i].start <= pos) {
        pos = ra->segs[i].end;
        i++;
    }
    ra->readable = pos - ra->read_offset;
}

int64_t qr_ra_insert(qr_reasm *ra, uint64_t offset, const char *data, size_t len, int fin)
{
    uint64_t end = len > UINT64_MAX - offset ? UINT64_MAX : offset + len;
    uint64_t contig = ra->read_offset + ra->readable;
    uint64_t pos, growth = 0;
    size_t i;

    if (ra->has_final) {
        if (fin && end != ra->final_size)
            return QR_EFINAL_CHANGED;
        if (end > ra->final_size)
            return QR_EFINAL_BEYOND;
    } else if (fin && end < ra->highest_offset) {
        return QR_EFINAL_BELOW;
    }
    if (end > ra->max_offset)
        return QR_EFLOW;
    if (end > ra->highest_offset) {
        growth = end - ra->highest_offset;
        ra->highest_offset = end;
    }
    if (fin) {
        ra->final_size = end;
        ra->has_final = 1;
    }

    /* Bytes below contig are already held or consumed. */
    pos = offset > contig ? offset : contig;
    i = seg_search(ra, pos);
    while (pos < end) {
        uint64_t gap_end;
        int err;
        if (i < ra->nsegs && ra->segs[i].start <= pos) {
            pos = ra->segs[i].end;
            i++;
            continue;
        }
        gap_end = (i < ra->nsegs && ra->segs[i].start < end) ? ra->segs[i].start : end;
        if (i > 0 && ra->segs[i - 1].end == pos) {
            err = append(&ra->segs[i - 1], data + (pos - offset), (size_t)(gap_end - pos),
                         ra->max_offset - ra->segs[i - 1].start);
        } else {
            err = new_segment(ra, i, pos, data + (pos - offset), (size_t)(gap_end - pos));
            i++;
        }
        if (err)
            return err; /* what was copied so far stays: the state is consistent */
        ra->buffered += gap_end - pos;
        pos = gap_end;
    }
    if (offset <= contig)
        update_readable(ra);
    return (int64_t)growth;
}

/* Copy the first n (<= readable) bytes into dst and consume them. */
static void consume(qr_reasm *ra, uint8_t *dst, uint64_t n)
{
    uint64_t left = n;
    while (left) {
        qr_seg *seg = ra->segs;
        uint64_t k = seg->end - seg->start;
        if (k > left)
            k = left;
        memcpy(dst, seg->p, (size_t)k);
        dst += k;
        left -= k;
        seg->p += k;
        seg->start += k;
        if (seg->start == seg->end) {
            recycle(ra, seg->mem, seg->cap);
            pop_front(ra);
        }
    }
    ra->read_offset += n;
    ra->readable -= n;
    ra->buffered -= n;
}

void qr_ra_read_into(qr_reasm *ra, char *dst, uint64_t n)
{
    if (n > ra->readable)
        n = ra->readable;
    consume(ra, (uint8_t *)dst, n);
}
