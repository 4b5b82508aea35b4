/* QUIC packet protection (RFC 9001 section 5) with AES-GCM from the system libcrypto.
 *
 * No OpenSSL headers and no link-time dependency: qr_pc_load dlopens libcrypto
 * (OpenSSL 1.1 or 3) at first use and looks up the few EVP functions needed, whose
 * prototypes are declared here with opaque pointer types.  Each qr_pc keys each of its
 * three contexts once, at its first use; a packet then only sets the nonce (EVP_*Init_ex
 * with NULL cipher and key).  When libcrypto is missing, qr_pc_load says why and quicish keeps its Python
 * path (quicish.wire.protection).  Callers hold the GIL (py_cipher.c), which serializes
 * the one-time load and the use of each context.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "core.h"

#ifndef _WIN32
#include <dlfcn.h>
#endif

/* Opaque libcrypto types. */
typedef struct qr_evp_ctx qr_evp_ctx;       /* EVP_CIPHER_CTX */
typedef struct qr_evp_cipher qr_evp_cipher; /* EVP_CIPHER */
typedef struct qr_engine qr_engine;         /* ENGINE */

#define EVP_CTRL_GCM_SET_IVLEN 0x9
#define EVP_CTRL_GCM_GET_TAG 0x10
#define EVP_CTRL_GCM_SET_TAG 0x11

typedef int (*init_fn)(qr_evp_ctx *, const qr_evp_cipher *, qr_engine *, const unsigned char *,
                       const unsigned char *);
typedef int (*update_fn)(qr_evp_ctx *, unsigned char *, int *, const unsigned char *, int);
typedef int (*final_fn)(qr_evp_ctx *, unsigned char *, int *);
typedef const qr_evp_cipher *(*cipher_fn)(void);

static struct {
    qr_evp_ctx *(*ctx_new)(void);
    void (*ctx_free)(qr_evp_ctx *);
    cipher_fn aes_128_gcm, aes_256_gcm, aes_128_ecb, aes_256_ecb;
    init_fn encrypt_init, decrypt_init;
    update_fn encrypt_update, decrypt_update;
    final_fn encrypt_final, decrypt_final;
    int (*ctrl)(qr_evp_ctx *, int, int, void *);
    int (*set_padding)(qr_evp_ctx *, int);
    /* optional */
    void (*err_clear)(void);
    const char *(*version)(int);
    const qr_evp_cipher *(*cipher_fetch)(void *, const char *, const char *); /* OpenSSL 3 */
} evp;

/* The four ciphers as OpenSSL 3 fetches them, once (never freed: contexts of live objects
 * use them); NULL: the legacy EVP_aes_* objects, which OpenSSL 3 looks up again at every
 * context's setup (an implicit fetch, most of a key's setup cost). */
static const qr_evp_cipher *fetched[4]; /* AES-128-GCM, AES-256-GCM, AES-128-ECB, AES-256-ECB */

static int load_state; /* 0: not tried, 1: loaded, -1: failed */
static char load_error[400];
static char backend[256];

/* ------------------------------------------------------------------ loading */

#ifdef _WIN32

static int load_library(void)
{
    strcpy(load_error, "libcrypto is not looked for on Windows");
    return -1;
}

#else

static const char *const candidates[] = {
#ifdef __APPLE__
    /* Never the bare "libcrypto.dylib": macOS's own aborts the process when loaded so. */
    "libcrypto.3.dylib",
    "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
    "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
#else
    "libcrypto.so.3",
    "libcrypto.so.1.1",
#endif
    NULL,
};

/* dlsym into a function pointer without converting void * to one (not ISO C). */
#define LOAD(field, name)                                                                    \
    do {                                                                                     \
        void *p_ = dlsym(handle, name);                                                      \
        if (!p_) {                                                                           \
            snprintf(load_error, sizeof(load_error), "%.300s has no %s", soname, name);          \
            return -1;                                                                       \
        }                                                                                    \
        memcpy(&evp.field, &p_, sizeof(p_));                                                 \
    } while (0)

#define LOAD_OPTIONAL(field, name)                                                           \
    do {                                                                                     \
        void *p_ = dlsym(handle, name);                                                      \
        if (p_)                                                                              \
            memcpy(&evp.field, &p_, sizeof(p_));                                             \
    } while (0)

static int load_symbols(void *handle, const char *soname)
{
    LOAD(ctx_new, "EVP_CIPHER_CTX_new");
    LOAD(ctx_free, "EVP_CIPHER_CTX_free");
    LOAD(aes_128_gcm, "EVP_aes_128_gcm");
    LOAD(aes_256_gcm, "EVP_aes_256_gcm");
    LOAD(aes_128_ecb, "EVP_aes_128_ecb");
    LOAD(aes_256_ecb, "EVP_aes_256_ecb");
    LOAD(encrypt_init, "EVP_EncryptInit_ex");
    LOAD(decrypt_init, "EVP_DecryptInit_ex");
    LOAD(encrypt_update, "EVP_EncryptUpdate");
    LOAD(decrypt_update, "EVP_DecryptUpdate");
    LOAD(encrypt_final, "EVP_EncryptFinal_ex");
    LOAD(decrypt_final, "EVP_DecryptFinal_ex");
    LOAD(ctrl, "EVP_CIPHER_CTX_ctrl");
    LOAD(set_padding, "EVP_CIPHER_CTX_set_padding");
    LOAD_OPTIONAL(err_clear, "ERR_clear_error");
    LOAD_OPTIONAL(version, "OpenSSL_version"); /* 1.1 and later */
    LOAD_OPTIONAL(cipher_fetch, "EVP_CIPHER_fetch");
    if (evp.cipher_fetch) {
        static const char *const names[4] = {"AES-128-GCM", "AES-256-GCM", "AES-128-ECB",
                                             "AES-256-ECB"};
        int i;
        for (i = 0; i < 4; i++)
            if (!(fetched[i] = evp.cipher_fetch(NULL, names[i], NULL)))
                break;
        if (i < 4) /* (then all legacy: a fetched cipher found is kept, not freed) */
            memset(fetched, 0, sizeof(fetched));
    }
    return 0;
}

static int load_library(void)
{
    const char *forced = getenv("QUICISH_LIBCRYPTO");
    const char *const *names = candidates;
    const char *one[2];
    size_t i;
    char tried[200] = "";
    if (forced && *forced) {
        one[0] = forced;
        one[1] = NULL;
        names = one;
    }
    for (i = 0; names[i]; i++) {
        void *handle = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof(tried) - used, "%s%s", used ? ", " : "", names[i]);
            continue;
        }
        /* Never dlclose'd: the contexts of live objects point into it. */
        if (load_symbols(handle, names[i]) < 0) {
            memset(&evp, 0, sizeof(evp));
            return -1;
        }
        snprintf(backend, sizeof(backend), "%.120s (%.120s)", names[i],
                 evp.version ? evp.version(0) : "OpenSSL 1.0 or older");
        return 0;
    }
    snprintf(load_error, sizeof(load_error), "cannot dlopen %s", tried);
    return -1;
}

#endif /* _WIN32 */

static void clear_errors(void)
{
    if (evp.err_clear)
        evp.err_clear();
}

/* Known answers, so that a library that loads but computes something else is not used:
 * GCM test cases 2 and 14 (zero key, nonce and block; the ciphertext does not depend on
 * the associated data, the tag is checked by opening) and AES of the zero block (the
 * GCM hash keys H of test cases 1 and 13), through the functions that packets use. */
static int self_test(void)
{
    static const uint8_t zero[32] = {0};
    static const uint8_t gcm[2][32] = {
        {0x03, 0x88, 0xda, 0xce, 0x60, 0xb6, 0xa3, 0x92, 0xf3, 0x28, 0xc2,
         0xb9, 0x71, 0xb2, 0xfe, 0x78, 0xab, 0x6e, 0x47, 0xd4, 0x2c, 0xec,
         0x13, 0xbd, 0xf5, 0x3a, 0x67, 0xb2, 0x12, 0x57, 0xbd, 0xdf},
        {0xce, 0xa7, 0x40, 0x3d, 0x4d, 0x60, 0x6b, 0x6e, 0x07, 0x4e, 0xc5,
         0xd3, 0xba, 0xf3, 0x9d, 0x18, 0xd0, 0xd1, 0xc8, 0xa7, 0x99, 0x99,
         0x6b, 0xf0, 0x26, 0x5b, 0x98, 0xb5, 0xd4, 0x8a, 0xb9, 0x19},
    };
    static const uint8_t ecb[2][16] = {
        {0x66, 0xe9, 0x4b, 0xd4, 0xef, 0x8a, 0x2c, 0x3b, 0x88, 0x4c, 0xfa, 0x59, 0xca, 0x34,
         0x2b, 0x2e},
        {0xdc, 0x95, 0xc0, 0x78, 0xa2, 0x40, 0x89, 0x89, 0xad, 0x48, 0xa2, 0x14, 0x92, 0x84,
         0x20, 0x87},
    };
    static const uint8_t header[2] = {0x40, 0x00}; /* short header, 1-byte pn */
    static const uint8_t other[2] = {0x40, 0x01};
    uint8_t out[2 + 16 + 16], plain[16], mask[16];
    int k;
    for (k = 0; k < 2; k++) {
        size_t n = k ? 32 : 16;
        qr_pc pc;
        int ok;
        if (qr_pc_init(&pc, zero, n, zero, zero) != QR_OK) {
            snprintf(load_error, sizeof(load_error), "%.300s: AES-%u-GCM setup failed", backend,
                     (unsigned)n * 8);
            return -1;
        }
        ok = qr_pc_open(&pc, zero, NULL, 0, gcm[k], 32, plain) == QR_OK &&
             memcmp(plain, zero, 16) == 0 &&
             qr_pc_seal(&pc, zero, header, 2, zero, 16, out) == QR_OK &&
             memcmp(out + 2, gcm[k], 16) == 0 &&
             qr_pc_open(&pc, zero, header, 2, out + 2, 32, plain) == QR_OK &&
             memcmp(plain, zero, 16) == 0 &&
             qr_pc_open(&pc, zero, other, 2, out + 2, 32, plain) == QR_EAUTH &&
             qr_pc_mask(&pc, zero, mask) == QR_OK && memcmp(mask, ecb[k], 16) == 0;
        qr_pc_release(&pc);
        if (!ok) {
            snprintf(load_error, sizeof(load_error), "%.300s: AES-%u known-answer test failed",
                     backend, (unsigned)n * 8);
            return -1;
        }
    }
    clear_errors();
    return 0;
}

int qr_pc_load(void)
{
    if (load_state == 0) {
        load_state = 1; /* self_test calls qr_pc_init, which calls this */
        if (load_library() < 0 || self_test() < 0) {
            load_state = -1;
            backend[0] = '\0';
        }
    }
    return load_state > 0 ? QR_OK : QR_EUNAVAIL;
}

const char *qr_pc_load_error(void)
{
    return load_state < 0 ? load_error : NULL;
}

const char *qr_pc_backend(void)
{
    return load_state > 0 ? backend : NULL;
}

/* ---------------------------------------------------------------- contexts */

/* AES-GCM (gcm != 0) or AES-ECB for a 16- or 32-byte key: the fetched cipher if any. */
static const qr_evp_cipher *cipher_for(int gcm, size_t key_len)
{
    int i = (gcm ? 0 : 2) + (key_len == 32);
    if (fetched[i])
        return fetched[i];
    if (gcm)
        return key_len == 16 ? evp.aes_128_gcm() : evp.aes_256_gcm();
    return key_len == 16 ? evp.aes_128_ecb() : evp.aes_256_ecb();
}

void qr_pc_release(qr_pc *pc)
{
    if (pc->enc)
        evp.ctx_free(pc->enc);
    if (pc->dec)
        evp.ctx_free(pc->dec);
    if (pc->hp)
        evp.ctx_free(pc->hp);
    memset(pc, 0, sizeof(*pc));
}

int qr_pc_init(qr_pc *pc, const uint8_t *key, size_t key_len, const uint8_t *iv,
               const uint8_t *hp_key)
{
    memset(pc, 0, sizeof(*pc));
    if (key_len != 16 && key_len != 32)
        return QR_EINVAL;
    if (qr_pc_load() != QR_OK)
        return QR_EUNAVAIL;
    pc->key_len = (uint8_t)key_len;
    memcpy(pc->key, key, key_len);
    memcpy(pc->hp_key, hp_key, key_len);
    memcpy(pc->iv, iv, QR_PC_IV_SIZE);
    return QR_OK;
}

/* The AES-GCM context of one direction (encrypt: 1), keyed: cipher, then IV length, then
 * key (the nonce comes per packet); NULL on failure. */
static qr_evp_ctx *make_gcm(const qr_pc *pc, int encrypt)
{
    const qr_evp_cipher *gcm = cipher_for(1, pc->key_len);
    init_fn init = encrypt ? evp.encrypt_init : evp.decrypt_init;
    qr_evp_ctx *ctx = gcm ? evp.ctx_new() : NULL;
    if (ctx && init(ctx, gcm, NULL, NULL, NULL) > 0 &&
        evp.ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, QR_PC_IV_SIZE, NULL) > 0 &&
        init(ctx, NULL, NULL, pc->key, NULL) > 0)
        return ctx;
    if (ctx)
        evp.ctx_free(ctx);
    clear_errors();
    return NULL;
}

/* The header protection context (AES-ECB, no padding), made at first need: 0 or -1. */
static int need_hp(qr_pc *pc)
{
    const qr_evp_cipher *ecb;
    qr_evp_ctx *ctx;
    if (pc->hp)
        return 0;
    ecb = cipher_for(0, pc->key_len);
    ctx = ecb ? evp.ctx_new() : NULL;
    if (ctx && evp.encrypt_init(ctx, ecb, NULL, pc->hp_key, NULL) > 0 &&
        evp.set_padding(ctx, 0) > 0) {
        pc->hp = ctx;
        return 0;
    }
    if (ctx)
        evp.ctx_free(ctx);
    clear_errors();
    return -1;
}

/* ------------------------------------------------------------------ packets */

static void make_nonce(const qr_pc *pc, const uint8_t *pn12, uint8_t *nonce)
{
    int i;
    for (i = 0; i < QR_PC_IV_SIZE; i++)
        nonce[i] = pc->iv[i] ^ pn12[i];
}

int qr_pc_mask(qr_pc *pc, const uint8_t *sample, uint8_t *mask)
{
    int outl = 0;
    if (!pc->hp && need_hp(pc) < 0)
        return QR_ECRYPTO;
    if (evp.encrypt_update(pc->hp, mask, &outl, sample, QR_PC_SAMPLE_SIZE) <= 0 ||
        outl != QR_PC_SAMPLE_SIZE) {
        clear_errors();
        return QR_ECRYPTO;
    }
    return QR_OK;
}

static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int qr_pc_seal(qr_pc *pc, const uint8_t *pn12, const uint8_t *header, size_t hlen,
               const uint8_t *payload, size_t plen, uint8_t *out)
{
    uint8_t nonce[QR_PC_IV_SIZE], mask[QR_PC_SAMPLE_SIZE];
    uint8_t first = header[0], bits = (first & 0x80) ? 0x0F : 0x1F;
    unsigned pn_len = (first & 0x03) + 1, offset = 4 - pn_len;
    uint8_t *ct = out + hlen;
    int outl = 0, finl = 0;
    size_t i;
    if (!pc->enc && !(pc->enc = make_gcm(pc, 1)))
        return QR_ECRYPTO;
    make_nonce(pc, pn12, nonce);
    if (evp.encrypt_init(pc->enc, NULL, NULL, NULL, nonce) <= 0 ||
        evp.encrypt_update(pc->enc, NULL, &outl, header, (int)hlen) <= 0 ||
        evp.encrypt_update(pc->enc, ct, &outl, payload, (int)plen) <= 0 ||
        evp.encrypt_final(pc->enc, ct + outl, &finl) <= 0 ||
        (size_t)outl + (size_t)finl != plen ||
        evp.ctrl(pc->enc, EVP_CTRL_GCM_GET_TAG, QR_PC_TAG_SIZE, ct + plen) <= 0) {
        clear_errors();
        return QR_ECRYPTO;
    }
    if (qr_pc_mask(pc, ct + offset, mask) != QR_OK)
        return QR_ECRYPTO;
    if (hlen > pn_len) {
        memcpy(out, header, hlen);
        out[0] ^= mask[0] & bits;
        for (i = 0; i < pn_len; i++)
            out[hlen - pn_len + i] ^= mask[1 + i];
    } else {
        /* protection.py: header_int ^ (((m0 & bits) << 8 * (hlen - 1)) | (m4 >> 8 * offset)),
         * to_bytes(hlen): the two parts overlap here, and may not fit in hlen bytes. */
        uint64_t m4 = load_be(mask + 1, 4);
        uint64_t x = ((uint64_t)(mask[0] & bits) << (8 * (hlen - 1))) | (m4 >> (8 * offset));
        uint64_t r = load_be(header, hlen) ^ x;
        if (r >> (8 * hlen))
            return QR_EOVERFLOW;
        for (i = hlen; i-- > 0; r >>= 8)
            out[i] = (uint8_t)r;
    }
    return QR_OK;
}

int qr_pc_unprotect(qr_pc *pc, const uint8_t *packet, size_t pn_offset, uint8_t *first,
                    uint32_t *truncated, unsigned *pn_len)
{
    uint8_t mask[QR_PC_SAMPLE_SIZE], f = packet[0];
    unsigned n;
    if (qr_pc_mask(pc, packet + pn_offset + 4, mask) != QR_OK)
        return QR_ECRYPTO;
    f ^= mask[0] & ((f & 0x80) ? 0x0F : 0x1F);
    n = (f & 0x03) + 1;
    *first = f;
    *pn_len = n;
    *truncated = (uint32_t)((load_be(packet + pn_offset, 4) ^ load_be(mask + 1, 4)) >> (32 - 8 * n));
    return QR_OK;
}

int qr_pc_open(qr_pc *pc, const uint8_t *pn12, const uint8_t *aad, size_t aadlen,
               const uint8_t *ct, size_t ctlen, uint8_t *out)
{
    uint8_t nonce[QR_PC_IV_SIZE];
    size_t n = ctlen - QR_PC_TAG_SIZE;
    int outl = 0, finl = 0, ok;
    if (!pc->dec && !(pc->dec = make_gcm(pc, 0)))
        return QR_ECRYPTO;
    make_nonce(pc, pn12, nonce);
    if (evp.decrypt_init(pc->dec, NULL, NULL, NULL, nonce) <= 0 ||
        evp.ctrl(pc->dec, EVP_CTRL_GCM_SET_TAG, QR_PC_TAG_SIZE, (void *)(ct + n)) <= 0 ||
        (aadlen && evp.decrypt_update(pc->dec, NULL, &outl, aad, (int)aadlen) <= 0) ||
        evp.decrypt_update(pc->dec, out, &outl, ct, (int)n) <= 0) {
        clear_errors();
        return QR_ECRYPTO;
    }
    ok = evp.decrypt_final(pc->dec, out + outl, &finl) > 0;
    if (!ok) {
        clear_errors();
        return QR_EAUTH;
    }
    return (size_t)outl + (size_t)finl == n ? QR_OK : QR_ECRYPTO;
}

int64_t qr_pn_decode(int64_t largest_pn, uint32_t truncated, unsigned pn_len)
{
    const int64_t pn_max = (int64_t)1 << 62;
    int64_t expected = largest_pn + 1;
    int64_t win = (int64_t)1 << (8 * pn_len);
    int64_t hwin = win >> 1;
    int64_t pn = (expected & -win) | (int64_t)truncated;
    if (pn <= expected - hwin) {
        if (pn < pn_max - win)
            pn += win;
    } else if (pn > expected + hwin && pn >= win) {
        pn -= win;
    }
    return pn;
}
