/* Sorted disjoint ranges of uint64 values (ACK tracking, received-data map). */
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define B_BYTES(n) ((n) * 2 * sizeof(uint64_t))

/* First range index i in [0, len) whose boundary b[2i + k] satisfies
 * b > v (strict) or b >= v (!strict); len when none does. */
static size_t search(const qr_rangeset *rs, size_t k, uint64_t v, int strict)
{
    const uint64_t *b = rs->b;
    size_t lo = 0, hi = rs->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t x = b[2 * mid + k];
        if (strict ? x > v : x >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void qr_rs_init(qr_rangeset *rs, size_t max_ranges)
{
    rs->b = NULL;
    rs->base = NULL;
    rs->len = 0;
    rs->cap = 0;
    rs->max = max_ranges ? max_ranges : 1;
    rs->out = NULL;
    rs->out_cap = 0;
    rs->out_need = 0;
    rs->floor = 0;
}

void qr_rs_release(qr_rangeset *rs)
{
    free(rs->base);
    free(rs->out);
    qr_rs_init(rs, rs->max);
}

/* Make room for `extra` more ranges after the current ones. */
int qr_rs_reserve(qr_rangeset *rs, size_t extra)
{
    size_t head = rs->base ? (size_t)(rs->b - rs->base) / 2 : 0;
    size_t need = rs->len + extra;
    if (head + need <= rs->cap)
        return QR_OK;
    if (head) {
        memmove(rs->base, rs->b, B_BYTES(rs->len));
        rs->b = rs->base;
    }
    if (need > rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 4;
        uint64_t *nb;
        if (ncap < need)
            ncap = need;
        if (ncap > SIZE_MAX / (2 * sizeof(uint64_t)))
            return QR_ENOMEM;
        nb = realloc(rs->base, B_BYTES(ncap));
        if (!nb)
            return QR_ENOMEM;
        rs->base = rs->b = nb;
        rs->cap = ncap;
    }
    return QR_OK;
}

/* Drop the lowest ranges beyond max; the floor rises to the highest stop dropped. */
static void trim(qr_rangeset *rs)
{
    if (rs->len > rs->max) {
        size_t k = rs->len - rs->max;
        uint64_t stop = rs->b[2 * k - 1];
        if (stop > rs->floor)
            rs->floor = stop;
        rs->b += 2 * k;
        rs->len = rs->max;
    }
}

/* Replace ranges [lo, hi) by the k ranges in nb. */
static int splice(qr_rangeset *rs, size_t lo, size_t hi, const uint64_t *nb, size_t k)
{
    if (k > hi - lo) {
        int err = qr_rs_reserve(rs, k - (hi - lo));
        if (err)
            return err;
    }
    if (k != hi - lo && hi < rs->len)
        memmove(rs->b + 2 * (lo + k), rs->b + 2 * hi, B_BYTES(rs->len - hi));
    if (k)
        memcpy(rs->b + 2 * lo, nb, B_BYTES(k));
    rs->len = rs->len - (hi - lo) + k;
    trim(rs);
    return QR_OK;
}

int qr_rs_add(qr_rangeset *rs, uint64_t start, uint64_t stop)
{
    size_t n = rs->len, lo, hi;
    uint64_t nb[2];
    if (start >= stop || stop > QR_VALUE_MAX)
        return QR_EINVAL;
    if (n) {
        /* Fast paths: at or above the highest range (packet numbers mostly grow). */
        uint64_t *last = rs->b + 2 * (n - 1);
        if (start > last[1]) {
            nb[0] = start;
            nb[1] = stop;
            return splice(rs, n, n, nb, 1);
        }
        if (start >= last[0]) {
            if (stop > last[1])
                last[1] = stop;
            return QR_OK;
        }
    }
    lo = search(rs, 1, start, 0);  /* first range with stop >= start */
    hi = search(rs, 0, stop, 1);   /* first range with start > stop */
    nb[0] = start;
    nb[1] = stop;
    if (lo < hi) {
        if (rs->b[2 * lo] < start)
            nb[0] = rs->b[2 * lo];
        if (rs->b[2 * hi - 1] > stop)
            nb[1] = rs->b[2 * hi - 1];
    }
    return splice(rs, lo, hi, nb, 1);
}

int qr_rs_subtract(qr_rangeset *rs, uint64_t start, uint64_t stop)
{
    size_t lo, hi, k = 0;
    uint64_t nb[4];
    if (start >= stop || stop > QR_VALUE_MAX)
        return QR_EINVAL;
    lo = search(rs, 1, start, 1);  /* first range with stop > start */
    hi = search(rs, 0, stop, 0);   /* first range with start >= stop */
    if (lo >= hi)
        return QR_OK;
    if (rs->b[2 * lo] < start) {
        nb[2 * k] = rs->b[2 * lo];
        nb[2 * k + 1] = start;
        k++;
    }
    if (rs->b[2 * hi - 1] > stop) {
        nb[2 * k] = stop;
        nb[2 * k + 1] = rs->b[2 * hi - 1];
        k++;
    }
    return splice(rs, lo, hi, nb, k);
}

bool qr_rs_contains(const qr_rangeset *rs, uint64_t value)
{
    size_t i;
    /* Packet numbers mostly arrive above every range: no search for those. */
    if (!rs->len || value >= rs->b[2 * rs->len - 1])
        return false;
    i = search(rs, 1, value, 1);  /* first range with stop > value */
    return rs->b[2 * i] <= value;
}

void qr_rs_drop_below(qr_rangeset *rs, uint64_t value)
{
    size_t i;
    if (!rs->len)
        return;
    i = search(rs, 1, value, 1);
    rs->b += 2 * i;
    rs->len -= i;
    if (!rs->len)
        rs->b = rs->base;
    else if (rs->b[0] < value)
        rs->b[0] = value;
}

int qr_rs_add_packet(qr_rangeset *rs, uint64_t pn)
{
    size_t n = rs->len;
    int err;
    if (pn >= QR_VALUE_MAX)
        return QR_EINVAL;
    if (n) {
        uint64_t *last = rs->b + 2 * (n - 1);
        if (pn == last[1]) {  /* the next packet: by far the most common case */
            last[1] = pn + 1;
            return 1;
        }
        if (pn < last[1]) {
            size_t i;
            if (pn >= last[0])
                return 0;
            i = search(rs, 1, pn, 1);  /* first range with stop > pn */
            if (rs->b[2 * i] <= pn)
                return 0;
        }
    }
    if (pn < rs->floor)
        return 0;
    err = qr_rs_add(rs, pn, pn + 1);
    return err ? err : 1;
}

/* QUIC variable-length integer (RFC 9000 section 16); v <= QR_VARINT_MAX. */
static char *put_varint(char *p, uint64_t v)
{
    uint8_t *u = (uint8_t *)p;
    if (v < 0x40) {
        u[0] = (uint8_t)v;
        return p + 1;
    }
    if (v < 0x4000) {
        u[0] = (uint8_t)(0x40 | (v >> 8));
        u[1] = (uint8_t)v;
        return p + 2;
    }
    if (v < 0x40000000) {
        u[0] = (uint8_t)(0x80 | (v >> 24));
        u[1] = (uint8_t)(v >> 16);
        u[2] = (uint8_t)(v >> 8);
        u[3] = (uint8_t)v;
        return p + 4;
    }
    u[0] = (uint8_t)(0xC0 | (v >> 56));
    u[1] = (uint8_t)(v >> 48);
    u[2] = (uint8_t)(v >> 40);
    u[3] = (uint8_t)(v >> 32);
    u[4] = (uint8_t)(v >> 24);
    u[5] = (uint8_t)(v >> 16);
    u[6] = (uint8_t)(v >> 8);
    u[7] = (uint8_t)v;
    return p + 8;
}

/* ACK frame layout: type, largest, delay, range count, first range, then per further
 * range (gap, length), then the ECN counts for type 0x03; all varints. */
static int64_t ack_frame(qr_rangeset *rs, uint64_t delay, size_t max_ranges, const uint64_t *ecn)
{
    size_t k, i;
    const uint64_t *b;
    uint64_t start;
    char *p;
    if (!max_ranges || delay > QR_VARINT_MAX)
        return QR_EINVAL;
    if (ecn && (ecn[0] > QR_VARINT_MAX || ecn[1] > QR_VARINT_MAX || ecn[2] > QR_VARINT_MAX))
        return QR_EINVAL;
    if (!rs->len)
        return QR_EEMPTY;
    k = rs->len < max_ranges ? rs->len : max_ranges;
    /* type + 4 varints + 2 per further range + 3 ECN counts, 8 bytes each at most */
    if (k - 1 > (SIZE_MAX - 64) / 16)
        return QR_ENOMEM;
    rs->out_need = 1 + 4 * 8 + (k - 1) * 16 + 3 * 8;
    if (rs->out_need > rs->out_cap)
        return QR_ENOSPC;
    b = rs->b + 2 * rs->len;  /* one past the highest stop */
    p = rs->out;
    *p++ = ecn ? 0x03 : 0x02;
    p = put_varint(p, b[-1] - 1);          /* largest acknowledged */
    p = put_varint(p, delay);
    p = put_varint(p, k - 1);
    p = put_varint(p, b[-1] - 1 - b[-2]);  /* first range */
    start = b[-2];
    for (i = 1; i < k; i++) {
        b -= 2;  /* b[-1], b[-2]: stop and start of the next lower range */
        p = put_varint(p, start - b[-1] - 1);  /* gap */
        p = put_varint(p, b[-1] - 1 - b[-2]);  /* range length - 1 */
        start = b[-2];
    }
    if (ecn) {
        p = put_varint(p, ecn[0]);
        p = put_varint(p, ecn[1]);
        p = put_varint(p, ecn[2]);
    }
    return (int64_t)(p - rs->out);
}

int64_t qr_rs_ack_frame(qr_rangeset *rs, uint64_t delay, size_t max_ranges)
{
    return ack_frame(rs, delay, max_ranges, NULL);
}

int64_t qr_rs_ack_frame_ecn(qr_rangeset *rs, uint64_t delay, size_t max_ranges,
                            uint64_t ect0, uint64_t ect1, uint64_t ce)
{
    uint64_t ecn[3];
    ecn[0] = ect0;
    ecn[1] = ect1;
    ecn[2] = ce;
    return ack_frame(rs, delay, max_ranges, ecn);
}

int qr_rs_reserve_out(qr_rangeset *rs)
{
    char *nb;
    size_t ncap = rs->out_cap ? rs->out_cap : 64;
    if (rs->out_need <= rs->out_cap)
        return QR_OK;
    while (ncap < rs->out_need)
        ncap = ncap > SIZE_MAX / 2 ? rs->out_need : ncap * 2;
    nb = realloc(rs->out, ncap);
    if (!nb)
        return QR_ENOMEM;
    rs->out = nb;
    rs->out_cap = ncap;
    return QR_OK;
}
