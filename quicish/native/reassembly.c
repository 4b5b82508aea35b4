/* Receive-side reassembly of one QUIC stream (or CRYPTO stream).
 *
 * Received bytes live in segments sorted by offset (see core.h).  Inserting copies
 * only the parts not held yet (first copy wins): a part that continues a segment is
 * appended to it, a part just below one is prepended (or gets its own segment), a
 * part that closes the hole between two is appended to the first or joins them (see
 * MERGE_SLACK), anything else becomes a new segment.  Reading copies into the caller's buffer (qr_ra_read_into:
 * the bytes object that py_reassembly.c returns).  A fully read segment's allocation is
 * kept as a spare and reused by the next new segment, so in-order streaming does not
 * malloc.
 *
 * Costs stay bounded whatever the order of arrival: a segment grows its allocation
 * by doubling, with the free room split between both ends; a join copies the smaller
 * segment into the larger (a byte is copied O(log n) times at most); the segment
 * array keeps free slots at both ends and opens a slot by shifting the shorter side;
 * segments number at most about twice the fragments, which the caller caps.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

void qr_ra_init(qr_reasm *ra, uint64_t max_offset)
{
    memset(ra, 0, sizeof(*ra));
    ra->max_offset = max_offset;
    ra->max_fragments = QR_VALUE_MAX;
}

void qr_ra_release(qr_reasm *ra)
{
    size_t i;
    uint64_t max_fragments = ra->max_fragments;
    for (i = 0; i < ra->nsegs; i++)
        free(ra->segs[i].mem);
    free(ra->seg_base);
    free(ra->spare);
    qr_ra_init(ra, ra->max_offset);
    ra->max_fragments = max_fragments;
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

/* Remove slot i of the segment array, shifting the shorter side. */
static void close_slot(qr_reasm *ra, size_t i)
{
    size_t n = ra->nsegs;
    if (i < n - 1 - i) {
        memmove(ra->segs + 1, ra->segs, i * sizeof(qr_seg));
        ra->segs++;
    } else {
        memmove(ra->segs + i, ra->segs + i + 1, (n - 1 - i) * sizeof(qr_seg));
    }
    if (!--ra->nsegs)
        ra->segs = ra->seg_base;
}

/* Open a free slot at index i (the segments from i on then start at i + 1), shifting
 * the shorter side.  When that side has no free slot the array is laid out again with
 * the free slots split between both ends (in place when at least a third is free,
 * else at twice the capacity), so slots opened at either end cost O(1) amortized. */
static int open_slot(qr_reasm *ra, size_t i)
{
    size_t n = ra->nsegs;
    size_t head = ra->seg_base ? (size_t)(ra->segs - ra->seg_base) : 0;
    size_t tail = ra->seg_cap - head - n;
    int front = i < n - i;
    if (front ? !head : !tail) {
        size_t ncap = ra->seg_cap, nhead;
        qr_seg *nb = ra->seg_base;
        if (3 * (ncap - n) < ncap || ncap - n < 2) {
            ncap = ncap ? 2 * ncap : 4;
            if (ncap > SIZE_MAX / sizeof(qr_seg))
                return QR_ENOMEM;
            if (!(nb = malloc(ncap * sizeof(qr_seg))))
                return QR_ENOMEM;
        }
        nhead = (ncap - n) / 2;
        if (n)
            memmove(nb + nhead, ra->segs, n * sizeof(qr_seg));
        if (nb != ra->seg_base)
            free(ra->seg_base);
        ra->seg_base = nb;
        ra->segs = nb + nhead;
        ra->seg_cap = ncap;
        head = nhead;
        tail = ncap - nhead - n;
    }
    if (head && (front || !tail)) {
        memmove(ra->segs - 1, ra->segs, i * sizeof(qr_seg));
        ra->segs--;
    } else {
        memmove(ra->segs + i + 1, ra->segs + i, (n - i) * sizeof(qr_seg));
    }
    ra->nsegs++;
    return QR_OK;
}

/* Insert a new segment [pos, pos + n) at index i. */
static int new_segment(qr_reasm *ra, size_t i, uint64_t pos, const char *data, size_t n)
{
    qr_seg *seg;
    uint8_t *mem;
    size_t cap;
    if (ra->spare && ra->spare_cap >= n) {
        mem = ra->spare;
        cap = ra->spare_cap;
    } else {
        if (!(mem = malloc(n)))
            return QR_ENOMEM;
        cap = n;
    }
    if (open_slot(ra, i)) {
        if (mem != ra->spare)
            free(mem);
        return QR_ENOMEM;
    }
    if (mem == ra->spare) {
        ra->spare = NULL;
        ra->spare_cap = 0;
    }
    memcpy(mem, data, n);
    seg = ra->segs + i;
    seg->start = pos;
    seg->end = pos + n;
    seg->p = seg->mem = mem;
    seg->cap = cap;
    return QR_OK;
}

/* Make room in seg's allocation for `front` more bytes before its data and `back` more
 * after it, never covering offsets below read_offset or above max_offset (so the
 * prefix segment keeps all its room at the back, a plain growing buffer).  When at
 * least a third of the allocation is free and enough, the data moves in place to the
 * middle of its free room; otherwise the capacity at least doubles, the side asked
 * for gets the new room and the other side keeps what it had. */
static int make_room(qr_reasm *ra, qr_seg *seg, uint64_t front, uint64_t back)
{
    uint64_t len = seg->end - seg->start;
    uint64_t before = seg->start - ra->read_offset;
    uint64_t after = ra->max_offset > seg->end ? ra->max_offset - seg->end : 0;
    uint64_t cur_head = (uint64_t)(seg->p - seg->mem), cur_tail = seg->cap - cur_head - len;
    uint64_t ncap = seg->cap, nfree, head;
    uint8_t *nm;
    if (after < back)
        after = back;
    if (ncap - len < front + back || 2 * (ncap - len) < len) {
        ncap = 2 * (uint64_t)seg->cap;
        if (ncap < len + front + back)
            ncap = len + front + back;
        if (ncap > len + before + after)
            ncap = len + before + after;
        if (ncap > (uint64_t)SIZE_MAX / 2)
            return QR_ENOMEM;
        nfree = ncap - len;
        if (front)
            head = nfree - (cur_tail < nfree - front ? cur_tail : nfree - front);
        else
            head = cur_head;
    } else {
        nfree = ncap - len;
        head = nfree / 2;
    }
    if (head > before)
        head = before;
    if (nfree - head > after)
        head = nfree - after;
    if (head < front)
        head = front;
    if (nfree - head < back)
        head = nfree - back;
    if (ncap == seg->cap) {
        memmove(seg->mem + head, seg->p, (size_t)len);
        seg->p = seg->mem + head;
        return QR_OK;
    }
    if (!head) {
        /* A buffer growing at the back: realloc may extend it in place. */
        if (seg->p != seg->mem)
            memmove(seg->mem, seg->p, (size_t)len);
        if (!(nm = realloc(seg->mem, (size_t)ncap))) {
            seg->p = seg->mem;
            return QR_ENOMEM;
        }
    } else {
        if (!(nm = malloc((size_t)ncap)))
            return QR_ENOMEM;
        memcpy(nm + head, seg->p, (size_t)len);
        free(seg->mem);
    }
    seg->mem = nm;
    seg->p = nm + head;
    seg->cap = (size_t)ncap;
    return QR_OK;
}

/* Append n bytes to seg. */
static int append(qr_reasm *ra, qr_seg *seg, const char *data, size_t n)
{
    size_t used = (size_t)(seg->p - seg->mem) + (size_t)(seg->end - seg->start);
    if (used + n > seg->cap) {
        int err = make_room(ra, seg, 0, n);
        if (err)
            return err;
    }
    memcpy(seg->p + (seg->end - seg->start), data, n);
    seg->end += n;
    return QR_OK;
}

/* Prepend n bytes to seg. */
static int prepend(qr_reasm *ra, qr_seg *seg, const char *data, size_t n)
{
    if ((size_t)(seg->p - seg->mem) < n) {
        int err = make_room(ra, seg, n, 0);
        if (err)
            return err;
    }
    seg->p -= n;
    seg->start -= n;
    memcpy(seg->p, data, n);
    return QR_OK;
}

/* While the segments number less than 2 * fragments + MERGE_SLACK, a piece just
 * below a segment gets a segment of its own, and a piece that closes the hole between
 * two segments is appended to the first: no segment is copied (the common case of a
 * reordered packet, or a retransmission filling a loss).  Beyond, the piece is
 * prepended to the segment above, or the two segments are joined.  So the segments
 * never number more than about twice the peak of fragments plus the slack. */
#define MERGE_SLACK 64

/* The n bytes at data close the hole between segments i - 1 and i: one segment (at
 * index i - 1) then holds all three, the smaller segment copied into the larger. */
static int join(qr_reasm *ra, size_t i, const char *data, size_t n)
{
    qr_seg *left = ra->segs + i - 1, *right = ra->segs + i;
    uint64_t llen = left->end - left->start, rlen = right->end - right->start;
    int err;
    if (llen >= rlen) {
        size_t used = (size_t)(left->p - left->mem) + (size_t)llen;
        if (used + n + rlen > left->cap && (err = make_room(ra, left, 0, n + rlen)))
            return err;
        memcpy(left->p + llen, data, n);
        memcpy(left->p + llen + n, right->p, (size_t)rlen);
        left->end = right->end;
        recycle(ra, right->mem, right->cap);
        close_slot(ra, i);
    } else {
        if ((size_t)(right->p - right->mem) < llen + n &&
            (err = make_room(ra, right, llen + n, 0)))
            return err;
        right->p -= llen + n;
        memcpy(right->p, left->p, (size_t)llen);
        memcpy(right->p + llen, data, n);
        right->start = left->start;
        recycle(ra, left->mem, left->cap);
        close_slot(ra, i - 1);
    }
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
    uint64_t pos, growth = 0, fragments = ra->fragments;
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

    /* The common case: data that continues the highest segment (in order, or in order
     * beyond a gap).  Its start is at or above contig, and nothing is held above it. */
    if (ra->nsegs && offset == ra->segs[ra->nsegs - 1].end && len) {
        int err = append(ra, &ra->segs[ra->nsegs - 1], data, len);
        if (err)
            return err;
        ra->buffered += len;
        if (offset == contig)
            ra->readable += len;
        return (int64_t)growth;
    }

    /* Bytes below contig are already held or consumed. */
    pos = offset > contig ? offset : contig;
    i = seg_search(ra, pos);
    while (pos < end) {
        uint64_t gap_end, n;
        const char *src;
        int err, left, right, crowded;
        if (i < ra->nsegs && ra->segs[i].start <= pos) {
            pos = ra->segs[i].end;
            i++;
            continue;
        }
        right = i < ra->nsegs && ra->segs[i].start <= end;
        gap_end = right ? ra->segs[i].start : end;
        left = i > 0 && ra->segs[i - 1].end == pos;
        n = gap_end - pos;
        src = data + (pos - offset);
        crowded = ra->nsegs >= 2 * ra->fragments + MERGE_SLACK;
        if (left && right && crowded)
            err = join(ra, i, src, (size_t)n);
        else if (left)
            err = append(ra, &ra->segs[i - 1], src, (size_t)n);
        else if (right && crowded)
            err = prepend(ra, &ra->segs[i], src, (size_t)n);
        else
            err = new_segment(ra, i, pos, src, (size_t)n);
        if (err)
            return err; /* what was copied so far stays: the state is consistent */
        ra->buffered += n;
        /* The prefix [read_offset, contig) counts as a run that is not a fragment. */
        if (left || pos == contig)
            ra->fragments -= right;
        else
            ra->fragments += !right;
        if (left && right && crowded) { /* joined */
            pos = ra->segs[i - 1].end;
        } else if (right && !left && crowded) { /* prepended */
            pos = ra->segs[i].end;
            i++;
        } else { /* appended, or a new segment */
            pos = gap_end;
            i += !left;
        }
    }
    if (offset <= contig)
        update_readable(ra);
    if (ra->fragments > fragments && ra->fragments > ra->max_fragments)
        return QR_EFRAGMENTS; /* only an insert that adds a fragment fails */
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
            close_slot(ra, 0);
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
