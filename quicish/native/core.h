/* quicish native core: ACK range set and stream reassembly buffer.
 *
 * Values are uint64 offsets / packet numbers; QUIC keeps them below 2^62.
 * Functions return 0 (or a non-negative result) on success and a negative
 * QR_E* code on failure; they never touch Python objects (the py_*.c files wrap
 * them in CPython types and, with pytypes.c, are the only files that include Python.h).
 */
#ifndef QUICISH_CORE_H
#define QUICISH_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QR_OK 0
#define QR_EINVAL (-1)          /* bad argument (stop <= start, value > 2^62) */
#define QR_ENOMEM (-2)          /* allocation failed; state unchanged */
#define QR_EFLOW (-3)           /* data beyond the flow-control limit */
#define QR_EFINAL_CHANGED (-4)  /* FIN disagrees with the known final size */
#define QR_EFINAL_BEYOND (-5)   /* data beyond the known final size */
#define QR_EFINAL_BELOW (-6)    /* FIN below the highest offset received */
#define QR_EEMPTY (-7)          /* ACK frame of an empty range set */
#define QR_ENOSPC (-8)          /* ACK frame does not fit in rs->out: qr_rs_reserve_out() */
#define QR_EFRAGMENTS (-9)      /* an insert added a fragment beyond max_fragments (data kept) */

#define QR_VALUE_MAX ((uint64_t)1 << 62)
#define QR_VARINT_MAX (QR_VALUE_MAX - 1)

/* Sorted, disjoint, non-adjacent half-open ranges.  `b` holds 2*len
 * boundaries (start0, stop0, start1, stop1, ...) in ascending order and
 * points into the allocation `base` (cap ranges); dropping the lowest ranges
 * just advances `b`.  `out` (out_cap bytes, NULL until first needed) receives
 * the ACK frames built by qr_rs_ack_frame*; it only moves in qr_rs_reserve_out. */
typedef struct qr_rangeset {
    uint64_t *b;
    size_t len;
    size_t max;
    uint64_t *base;
    size_t cap;
    char *out;
    size_t out_cap;
    size_t out_need;   /* set when QR_ENOSPC is returned */
    uint64_t floor;    /* highest stop of a range dropped by max: add_packet below is a duplicate */
} qr_rangeset;

void qr_rs_init(qr_rangeset *rs, size_t max_ranges);
void qr_rs_release(qr_rangeset *rs);
int qr_rs_reserve(qr_rangeset *rs, size_t extra);
int qr_rs_add(qr_rangeset *rs, uint64_t start, uint64_t stop);
int qr_rs_subtract(qr_rangeset *rs, uint64_t start, uint64_t stop);
bool qr_rs_contains(const qr_rangeset *rs, uint64_t value);
void qr_rs_drop_below(qr_rangeset *rs, uint64_t value);
/* Add the single value pn: 1 if it was absent (even if max_ranges drops it again at
 * once), 0 if it was already present or is below rs->floor (it may have been in a range
 * max_ranges dropped), or QR_EINVAL (pn >= 2^62) / QR_ENOMEM. */
int qr_rs_add_packet(qr_rangeset *rs, uint64_t pn);
/* The whole ACK frame (type 0x02; 0x03 with the three ECN counts) for the highest
 * max_ranges ranges, RFC 9000 section 19.3, written to rs->out.  Returns its length,
 * QR_EINVAL (max_ranges == 0, a value above 2^62 - 1), QR_EEMPTY, or QR_ENOSPC
 * (rs->out is smaller than rs->out_need: call qr_rs_reserve_out and retry). */
int64_t qr_rs_ack_frame(qr_rangeset *rs, uint64_t delay, size_t max_ranges);
int64_t qr_rs_ack_frame_ecn(qr_rangeset *rs, uint64_t delay, size_t max_ranges,
                            uint64_t ect0, uint64_t ect1, uint64_t ce);
/* Grow rs->out to at least rs->out_need bytes: QR_OK or QR_ENOMEM. */
int qr_rs_reserve_out(qr_rangeset *rs);

/* Receive buffer of one stream: a sorted array of disjoint segments, each a
 * contiguous run of received bytes in its own allocation.  Data that continues
 * a segment is appended to it.  Data just below a segment gets its own, and a
 * piece that fills the hole between two segments is appended to the first, until
 * the segments number 2 * fragments + 64; from then on such data is prepended
 * (allocations keep room on the side they grow) and such segments are joined (the
 * smaller copied into the larger), so there are never many more segments than
 * the peak of fragments.  The segment array keeps free slots at both ends and a new segment
 * shifts the shorter side, so fragments arriving highest first cost O(1) each;
 * `fragments` (runs beyond the first hole) is capped by `max_fragments`.
 * Allocations follow the data received (sparse data far ahead costs only its
 * own bytes) and stay within the flow-control window. */
typedef struct qr_seg {
    uint64_t start;  /* stream offset of p[0] */
    uint64_t end;    /* p holds offsets [start, end) */
    uint8_t *p;
    uint8_t *mem;    /* allocation; p - mem bytes were consumed by reads */
    size_t cap;
} qr_seg;

typedef struct qr_reasm {
    uint64_t read_offset;
    uint64_t highest_offset;
    uint64_t max_offset;
    uint64_t final_size;
    int has_final;
    uint64_t readable;   /* contiguous bytes available at read_offset */
    uint64_t buffered;   /* distinct received bytes at or above read_offset */
    qr_seg *segs;        /* nsegs segments, points into seg_base */
    size_t nsegs;
    qr_seg *seg_base;
    size_t seg_cap;
    uint8_t *spare;      /* one recycled segment allocation */
    size_t spare_cap;
    uint64_t fragments;      /* maximal runs of bytes above read_offset + readable */
    uint64_t max_fragments;  /* insert fails with QR_EFRAGMENTS beyond this */
} qr_reasm;

/* qr_ra_init / qr_ra_release set up and free a qr_reasm embedded in another object
 * (the extension type of py_reassembly.c).  Release leaves an empty buffer. */
void qr_ra_init(qr_reasm *ra, uint64_t max_offset);
void qr_ra_release(qr_reasm *ra);
/* Returns how much highest_offset grew (>= 0) or a negative QR_E* code.  QR_EFRAGMENTS
 * is returned after the data was stored (the caller closes the connection). */
int64_t qr_ra_insert(qr_reasm *ra, uint64_t offset, const char *data, size_t len, int fin);
/* Copies min(n, readable) bytes into dst and consumes them; never allocates. */
void qr_ra_read_into(qr_reasm *ra, char *dst, uint64_t n);
/* Bytes currently allocated by ra (for tests of the memory bound). */
size_t qr_ra_memory(const qr_reasm *ra);

#endif
