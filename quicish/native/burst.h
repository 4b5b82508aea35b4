/* quicish native core: a burst of 1-RTT packets of one STREAM frame each (bulk sending).
 *
 * The packets quicish.proto.packet_builder's lean builder makes for a lone stream with new
 * data (RFC 9000 17.3.1 short header, 19.8 STREAM frame with Offset and Length), planned
 * and sealed in C, one packet after another into caller-provided buffers, while the
 * congestion window, the pacer's tokens, the data, the packet count and the next skipped
 * packet number allow.  Like core.h, nothing here touches Python objects; py_cipher.c
 * wraps it as PacketCipher.seal_stream_burst.
 */
#ifndef QUICISH_BURST_H
#define QUICISH_BURST_H

#include <stddef.h>
#include <stdint.h>

#include "aead.h"

typedef struct qr_burst {
    /* fixed for the burst */
    const uint8_t *dcid;
    size_t dcid_len;
    uint8_t first;          /* 0x40 with the spin and key phase bits; pn length added */
    int64_t largest_acked;  /* -1: none */
    int64_t skip_pn;        /* a packet number never sent: the burst stops before it */
    size_t datagram_size;
    uint64_t stream_id;
    const uint8_t *data;    /* the stream's bytes from the first packet's offset */
    uint64_t data_end;      /* stream offset after the last byte of data */
    int64_t final_size;     /* -1: unknown */
    double cwnd;
    double need;            /* pacer: tokens a packet needs (as Pacer.next_send_time) */
    double rate;            /* pacer: bytes per second */
    double now;
    double capacity;        /* pacer: the most tokens owed (Pacer.on_packet_sent) */
    unsigned max_count;
    /* running state: the next packet's */
    int64_t pn;
    uint64_t offset;
    uint64_t in_flight;
    int paced;              /* 0: the pacer holds nothing back (tokens unused) */
    double tokens;          /* pacer tokens */
    unsigned count;
    /* the planned packet (qr_burst_plan) */
    unsigned pn_len;
    size_t header_len;
    size_t length;          /* STREAM data bytes */
    size_t size;            /* whole packet, tag included */
    int fin;
} qr_burst;

/* Plan the next packet: 1 with its pn_len, header_len, length, size and fin set, or 0
 * when the burst ends (count, window, pacer, skipped number, or not a full packet of
 * data left). */
int qr_burst_plan(qr_burst *b);

/* Write the planned packet into out (b->size bytes), seal it with pc and advance the
 * running state.  QR_OK, or what qr_pc_seal returns. */
int qr_burst_seal(qr_burst *b, qr_pc *pc, uint8_t *out);

#endif
