/* quicish native core: QUIC packet protection with AES-128-GCM / AES-256-GCM.
 *
 * RFC 9001 section 5: the AEAD (nonce = iv XOR packet number) and AES header
 * protection, both done by the system's libcrypto, which aead.c loads with dlopen
 * at first use (no OpenSSL headers, no link-time dependency).  Like core.h, these
 * functions never touch Python objects; py_cipher.c wraps a qr_pc in the
 * PacketCipher extension type.
 */
#ifndef QUICISH_AEAD_H
#define QUICISH_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define QR_PC_TAG_SIZE 16
#define QR_PC_IV_SIZE 12
#define QR_PC_SAMPLE_SIZE 16

#define QR_ECRYPTO (-9)     /* a libcrypto call failed (out of memory, broken library) */
#define QR_EAUTH (-10)      /* authentication failed */
#define QR_EUNAVAIL (-11)   /* libcrypto could not be loaded: qr_pc_load_error() */
#define QR_EOVERFLOW (-12)  /* a header too short for its packet number (see qr_pc_seal) */

/* The libcrypto contexts of one key: AES-GCM encrypt and decrypt (each keyed at its first
 * use, then re-nonced per packet: a key protects one direction, so the other context is
 * never made) and AES-ECB without padding for header protection (made with the key). */
typedef struct qr_pc {
    void *enc;
    void *dec;
    void *hp;
    uint8_t iv[QR_PC_IV_SIZE];
    uint8_t key[32];
    uint8_t key_len;
} qr_pc;

/* Load libcrypto once (later calls return the first answer) and check it on known
 * answers: QR_OK or QR_EUNAVAIL.  $QUICISH_LIBCRYPTO, when set, is the only library
 * tried. */
int qr_pc_load(void);
/* Why qr_pc_load failed, or NULL. */
const char *qr_pc_load_error(void);
/* "soname (OpenSSL version)" of the library loaded, or NULL. */
const char *qr_pc_backend(void);

/* key and hp_key are key_len bytes (16: AES-128, 32: AES-256), iv 12 bytes.  QR_OK,
 * QR_EINVAL (a length), QR_EUNAVAIL or QR_ECRYPTO; on failure pc holds nothing. */
int qr_pc_init(qr_pc *pc, const uint8_t *key, size_t key_len, const uint8_t *iv,
               const uint8_t *hp_key);
/* Frees the contexts (pc may be zeroed or released already). */
void qr_pc_release(qr_pc *pc);

/* The 16-byte AES-ECB block of a 16-byte sample (the mask is its first 5 bytes). */
int qr_pc_mask(qr_pc *pc, const uint8_t *sample, uint8_t *mask);

/* Seal one packet into out (hlen + plen + 16 bytes): the protected header, the
 * ciphertext and the tag.  header[0] is the plain first byte (pn length in its low
 * two bits) and the header ends with the truncated packet number; pn12 is the full
 * packet number, 12 bytes big-endian.  The caller checks hlen >= 1 and
 * plen >= 4 - pn_length (the sample).  A header no longer than its packet number
 * (hlen <= pn_length, a caller's bug) is masked exactly as protection.py's integer
 * arithmetic does, and gives QR_EOVERFLOW where that arithmetic overflows.
 * hlen and plen must be below 2^31 - 16.  QR_OK, QR_ECRYPTO or QR_EOVERFLOW. */
int qr_pc_seal(qr_pc *pc, const uint8_t *pn12, const uint8_t *header, size_t hlen,
               const uint8_t *payload, size_t plen, uint8_t *out);

/* Header protection of a received packet (packet itself is not changed): the caller
 * checked 1 <= pn_offset and pn_offset + 20 <= packet length.  Sets *first (unmasked),
 * *truncated (the unmasked packet number) and *pn_len.  QR_OK or QR_ECRYPTO. */
int qr_pc_unprotect(qr_pc *pc, const uint8_t *packet, size_t pn_offset, uint8_t *first,
                    uint32_t *truncated, unsigned *pn_len);

/* Open ct (ctlen >= 16 bytes, the tag last) with aad = the plain header and the full
 * packet number (12 bytes big-endian) into out (ctlen - 16 bytes).  QR_OK, QR_EAUTH
 * or QR_ECRYPTO.  Lengths below 2^31. */
int qr_pc_open(qr_pc *pc, const uint8_t *pn12, const uint8_t *aad, size_t aadlen,
               const uint8_t *ct, size_t ctlen, uint8_t *out);

/* RFC 9000 A.3 packet number decoding, exactly as protection.py computes it for a
 * largest_pn in [-2^62, 2^62]: the full number, which is negative only for a
 * negative largest_pn far below -1 (protection.py then fails converting the nonce). */
int64_t qr_pn_decode(int64_t largest_pn, uint32_t truncated, unsigned pn_len);

#endif
