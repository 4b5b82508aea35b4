/* A burst of 1-RTT STREAM packets planned and sealed in C (see burst.h). */
#include "burst.h"

#include <string.h>

#include "core.h"

#define PN_LIMIT ((int64_t)1 << 62)

static unsigned varint_size(uint64_t v)
{
    return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    unsigned n = varint_size(v), i;
    static const uint8_t prefix[9] = {0, 0x00, 0x40, 0, 0x80, 0, 0, 0, 0xC0};
    for (i = n; i > 0; i--, v >>= 8)
        p[i - 1] = (uint8_t)v;
    p[0] |= prefix[n];
    return p + n;
}

static unsigned bit_length(uint64_t v)
{
    unsigned n = 0;
    while (v) {
        n++;
        v >>= 1;
    }
    return n;
}

int qr_burst_plan(qr_burst *b)
{
    int64_t unacked, room, max_len;
    uint64_t stop;
    if (b->count >= b->max_count || !((double)b->in_flight < b->cwnd))
        return 0;
    if (b->paced) { /* Pacer.next_send_time: a wait in the future holds the packet */
        double missing = b->need - b->tokens;
        if (missing > 0.5 && b->now + missing / b->rate > b->now)
            return 0;
    }
    if (b->pn < 0 || b->pn >= PN_LIMIT || b->pn == b->skip_pn)
        return 0;
    /* RFC 9000 A.2, as wire/pn.py encode_packet_number */
    unacked = b->pn - b->largest_acked;
    if (unacked <= 0)
        return 0;
    b->pn_len = (bit_length((uint64_t)unacked - 1) + 1 + 7) / 8;
    if (b->pn_len > 4)
        return 0;
    b->header_len = 1 + b->dcid_len + b->pn_len;
    room = (int64_t)b->datagram_size - (int64_t)b->header_len - QR_PC_TAG_SIZE;
    if (room < 1)
        return 0;
    /* StreamManager.write_stream_frames: the frame's overhead sized for the whole room */
    max_len = room - 1 - varint_size(b->stream_id) - varint_size((uint64_t)room) -
              (b->offset ? varint_size(b->offset) : 0);
    if (max_len < 1 || b->offset + (uint64_t)max_len > b->data_end)
        return 0;
    b->length = (size_t)max_len;
    stop = b->offset + b->length;
    b->fin = b->final_size >= 0 && stop == (uint64_t)b->final_size;
    b->size = b->header_len + 1 + varint_size(b->stream_id) +
              (b->offset ? varint_size(b->offset) : 0) + varint_size(b->length) + b->length +
              QR_PC_TAG_SIZE;
    return 1;
}

int qr_burst_seal(qr_burst *b, qr_pc *pc, uint8_t *out)
{
    uint8_t header[1 + 20 + 4], pn12[QR_PC_IV_SIZE], *p; /* first byte, CID, pn */
    unsigned i;
    int r;
    size_t hlen = b->header_len, plen;
    if (b->dcid_len > 20)
        return QR_EINVAL;
    header[0] = (uint8_t)(b->first | (b->pn_len - 1));
    memcpy(header + 1, b->dcid, b->dcid_len);
    for (i = 0; i < b->pn_len; i++)
        header[1 + b->dcid_len + i] = (uint8_t)((uint64_t)b->pn >> (8 * (b->pn_len - 1 - i)));
    /* the STREAM frame straight where its ciphertext goes (sealed in place) */
    p = out + hlen;
    *p = (uint8_t)(0x0A | (b->offset ? 0x04 : 0) | (b->fin ? 0x01 : 0));
    p = put_varint(p + 1, b->stream_id);
    if (b->offset)
        p = put_varint(p, b->offset);
    p = put_varint(p, b->length);
    memcpy(p, b->data, b->length);
    plen = (size_t)(p + b->length - (out + hlen));
    memset(pn12, 0, 4);
    for (i = 0; i < 8; i++)
        pn12[11 - i] = (uint8_t)((uint64_t)b->pn >> (8 * i));
    r = qr_pc_seal(pc, pn12, header, hlen, out + hlen, plen, out);
    if (r != QR_OK)
        return r;
    b->data += b->length;
    b->offset += b->length;
    b->in_flight += b->size;
    if (b->paced) { /* Pacer.on_packet_sent */
        b->tokens -= (double)b->size;
        if (!(b->tokens > -b->capacity))
            b->tokens = -b->capacity;
    }
    b->pn++;
    b->count++;
    return QR_OK;
}
