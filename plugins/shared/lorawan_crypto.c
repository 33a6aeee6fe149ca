// SPDX-License-Identifier: MIT
/*
 * LoRaWAN 1.0.x cryptography, written from the LoRaWAN 1.0.x specification
 * (FRMPayload encryption, MIC, join-request) and RFC 4493, on OpenSSL 3.
 */
#include "lorawan_crypto.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

struct lorawan_crypto {
	EVP_MAC *mac;
	EVP_MAC_CTX *mctx;
	bool mac_cipher_set; /* CMAC keeps its cipher across re-inits */
	EVP_CIPHER *ecb;
	EVP_CIPHER_CTX *cctx;
};

/* The FRMPayload block counter is one byte: at most 255 blocks. */
#define FRM_MAX_LEN (255u * 16u)
/* Blocks of keystream computed per EVP call. */
#define KS_BLOCKS 16

struct lorawan_crypto *lorawan_crypto_new(void)
{
	struct lorawan_crypto *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	c->ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
	if (c->mac)
		c->mctx = EVP_MAC_CTX_new(c->mac);
	c->cctx = EVP_CIPHER_CTX_new();
	if (!c->mac || !c->ecb || !c->mctx || !c->cctx) {
		lorawan_crypto_free(c);
		return NULL;
	}
	return c;
}

void lorawan_crypto_free(struct lorawan_crypto *c)
{
	if (!c)
		return;
	EVP_MAC_CTX_free(c->mctx);
	EVP_MAC_free(c->mac);
	EVP_CIPHER_CTX_free(c->cctx);
	EVP_CIPHER_free(c->ecb);
	free(c);
}

/* CMAC over the concatenation p1 | p2 (either may be empty). */
static int cmac2(struct lorawan_crypto *c, const uint8_t *key, const void *p1, size_t n1,
		 const void *p2, size_t n2, uint8_t tag[LORAWAN_CMAC_LEN])
{
	OSSL_PARAM params[2];
	size_t outl = 0;

	if (!c->mac_cipher_set) {
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER,
							     (char *)"AES-128-CBC", 0);
		params[1] = OSSL_PARAM_construct_end();
		if (!EVP_MAC_init(c->mctx, key, LORAWAN_KEY_LEN, params))
			return -EIO;
		c->mac_cipher_set = true;
	} else if (!EVP_MAC_init(c->mctx, key, LORAWAN_KEY_LEN, NULL)) {
		return -EIO;
	}
	if (n1 && !EVP_MAC_update(c->mctx, p1, n1))
		return -EIO;
	if (n2 && !EVP_MAC_update(c->mctx, p2, n2))
		return -EIO;
	if (!EVP_MAC_final(c->mctx, tag, &outl, LORAWAN_CMAC_LEN) || outl != LORAWAN_CMAC_LEN)
		return -EIO;
	return 0;
}

/* ECB-encrypts n whole blocks from in to out under key. */
static int ecb_blocks(struct lorawan_crypto *c, const uint8_t *key, const uint8_t *in, uint8_t *out,
		      size_t nblocks)
{
	int outl = 0;

	if (!EVP_EncryptInit_ex2(c->cctx, c->ecb, key, NULL, NULL))
		return -EIO;
	EVP_CIPHER_CTX_set_padding(c->cctx, 0);
	if (!EVP_EncryptUpdate(c->cctx, out, &outl, in, (int)(nblocks * 16)) ||
	    (size_t)outl != nblocks * 16)
		return -EIO;
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* The B0 and A_i blocks share this layout: tag 0x49 or 0x01, 4 zero bytes,
 * Dir, DevAddr, FCnt, 0x00, and a last byte (message length or i). */
static void frame_block(uint8_t b[16], uint8_t tag, enum lorawan_dir dir, uint32_t devaddr,
			uint32_t fcnt, uint8_t last)
{
	memset(b, 0, 16);
	b[0] = tag;
	b[5] = (uint8_t)dir;
	put_le32(&b[6], devaddr);
	put_le32(&b[10], fcnt);
	b[15] = last;
}

static bool dir_ok(enum lorawan_dir dir)
{
	return dir == LORAWAN_DIR_UP || dir == LORAWAN_DIR_DOWN;
}

/* Runs `expr` with `c` pointing at a usable context, a temporary one when
 * the caller passed NULL. */
#define WITH_CTX(c, expr)                                                                          \
	do {                                                                                       \
		struct lorawan_crypto *tmp_ = NULL;                                                \
		int rc_;                                                                           \
		if (!(c)) {                                                                        \
			(c) = tmp_ = lorawan_crypto_new();                                         \
			if (!(c))                                                                  \
				return -ENOMEM;                                                    \
		}                                                                                  \
		rc_ = (expr);                                                                      \
		lorawan_crypto_free(tmp_);                                                         \
		return rc_;                                                                        \
	} while (0)

int lorawan_crypto_aes128_encrypt(struct lorawan_crypto *c, const uint8_t key[LORAWAN_KEY_LEN],
				  const uint8_t in[16], uint8_t out[16])
{
	if (!key || !in || !out)
		return -EINVAL;
	WITH_CTX(c, ecb_blocks(c, key, in, out, 1));
}

int lorawan_crypto_cmac(struct lorawan_crypto *c, const uint8_t key[LORAWAN_KEY_LEN],
			const void *msg, size_t len, uint8_t tag[LORAWAN_CMAC_LEN])
{
	if (!key || !tag || (len && !msg))
		return -EINVAL;
	WITH_CTX(c, cmac2(c, key, msg, len, NULL, 0, tag));
}

static int data_mic(struct lorawan_crypto *c, const uint8_t *key, enum lorawan_dir dir,
		    uint32_t devaddr, uint32_t fcnt, const void *msg, size_t len, uint8_t *mic)
{
	uint8_t b0[16], tag[LORAWAN_CMAC_LEN];
	int rc;

	frame_block(b0, 0x49, dir, devaddr, fcnt, (uint8_t)len);
	rc = cmac2(c, key, b0, sizeof(b0), msg, len, tag);
	if (rc == 0)
		memcpy(mic, tag, LORAWAN_MIC_LEN);
	return rc;
}

int lorawan_crypto_data_mic(struct lorawan_crypto *c, const uint8_t nwkskey[LORAWAN_KEY_LEN],
			    enum lorawan_dir dir, uint32_t devaddr, uint32_t fcnt, const void *msg,
			    size_t len, uint8_t mic[LORAWAN_MIC_LEN])
{
	if (!nwkskey || !mic || !dir_ok(dir) || len > 255 || (len && !msg))
		return -EINVAL;
	WITH_CTX(c, data_mic(c, nwkskey, dir, devaddr, fcnt, msg, len, mic));
}

static int frm_crypt(struct lorawan_crypto *c, const uint8_t *key, enum lorawan_dir dir,
		     uint32_t devaddr, uint32_t fcnt, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t a[KS_BLOCKS * 16], s[KS_BLOCKS * 16];
	size_t done = 0;
	unsigned i = 1;

	while (done < len) {
		size_t chunk = len - done, nb, k;
		int rc;

		if (chunk > sizeof(s))
			chunk = sizeof(s);
		nb = (chunk + 15) / 16;
		for (k = 0; k < nb; k++)
			frame_block(&a[k * 16], 0x01, dir, devaddr, fcnt, (uint8_t)(i + k));
		rc = ecb_blocks(c, key, a, s, nb);
		if (rc < 0) {
			OPENSSL_cleanse(s, sizeof(s));
			return rc;
		}
		for (k = 0; k < chunk; k++)
			out[done + k] = in[done + k] ^ s[k];
		done += chunk;
		i += (unsigned)nb;
	}
	OPENSSL_cleanse(s, sizeof(s));
	return 0;
}

int lorawan_crypto_frm_payload(struct lorawan_crypto *c, const uint8_t key[LORAWAN_KEY_LEN],
			       enum lorawan_dir dir, uint32_t devaddr, uint32_t fcnt,
			       const void *in, size_t len, void *out)
{
	if (!key || !dir_ok(dir) || len > FRM_MAX_LEN || (len && (!in || !out)))
		return -EINVAL;
	if (len == 0)
		return 0;
	WITH_CTX(c, frm_crypt(c, key, dir, devaddr, fcnt, in, len, out));
}

static int join_mic(struct lorawan_crypto *c, const uint8_t *key, const void *msg, uint8_t *mic)
{
	uint8_t tag[LORAWAN_CMAC_LEN];
	int rc = cmac2(c, key, msg, LORAWAN_JOIN_REQUEST_LEN, NULL, 0, tag);

	if (rc == 0)
		memcpy(mic, tag, LORAWAN_MIC_LEN);
	return rc;
}

int lorawan_crypto_join_request_mic(struct lorawan_crypto *c, const uint8_t appkey[LORAWAN_KEY_LEN],
				    const void *msg, size_t len, uint8_t mic[LORAWAN_MIC_LEN])
{
	if (!appkey || !msg || !mic || len != LORAWAN_JOIN_REQUEST_LEN)
		return -EINVAL;
	WITH_CTX(c, join_mic(c, appkey, msg, mic));
}
