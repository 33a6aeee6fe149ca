/* SPDX-License-Identifier: MIT */
/*
 * LoRaWAN 1.0.x cryptography: AES-128-CMAC (RFC 4493), the data frame MIC
 * (B0 block), FRMPayload encryption (A blocks, AES-128 keystream) and the
 * join-request MIC. Pure: no I/O, no globals; OpenSSL 3 does the AES.
 *
 * Every function takes an optional `struct lorawan_crypto` that keeps the
 * OpenSSL algorithm handles and contexts between calls; callers on a hot
 * path create one with lorawan_crypto_new() and reuse it. NULL is accepted
 * everywhere and costs a context set-up per call. A context is not
 * thread-safe: use one per thread.
 *
 * Byte order: DevAddr and FCnt are passed as host integers; the functions
 * lay them out little-endian as the spec's B0/A blocks require. Message
 * buffers are the bytes as on air.
 *
 * Every int function returns 0 or a negative errno: -EINVAL for a bad
 * argument (NULL key, message too long), -ENOMEM or -EIO when OpenSSL fails.
 */
#ifndef LABGW_LORAWAN_CRYPTO_H
#define LABGW_LORAWAN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define LORAWAN_KEY_LEN	 16
#define LORAWAN_MIC_LEN	 4
#define LORAWAN_CMAC_LEN 16
/* MHDR | JoinEUI | DevEUI | DevNonce */
#define LORAWAN_JOIN_REQUEST_LEN 19

enum lorawan_dir {
	LORAWAN_DIR_UP = 0,
	LORAWAN_DIR_DOWN = 1,
};

struct lorawan_crypto;

/* NULL when OpenSSL lacks AES-128 or memory runs out. */
struct lorawan_crypto *lorawan_crypto_new(void);
void lorawan_crypto_free(struct lorawan_crypto *c);

/* One AES-128 block encryption (as used for key derivation in the spec). */
int lorawan_crypto_aes128_encrypt(struct lorawan_crypto *c, const uint8_t key[LORAWAN_KEY_LEN],
				  const uint8_t in[16], uint8_t out[16]);

/* AES-128-CMAC of `len` bytes (len may be 0) into the full 16-byte tag. */
int lorawan_crypto_cmac(struct lorawan_crypto *c, const uint8_t key[LORAWAN_KEY_LEN],
			const void *msg, size_t len, uint8_t tag[LORAWAN_CMAC_LEN]);

/*
 * MIC of a data frame: `msg` is MHDR | FHDR | FPort | FRMPayload, i.e. the
 * PHYPayload without its last 4 bytes, at most 255 bytes. `fcnt` is the full
 * 32-bit frame counter (on air only its low 16 bits travel). key is the
 * NwkSKey.
 */
int lorawan_crypto_data_mic(struct lorawan_crypto *c, const uint8_t nwkskey[LORAWAN_KEY_LEN],
			    enum lorawan_dir dir, uint32_t devaddr, uint32_t fcnt, const void *msg,
			    size_t len, uint8_t mic[LORAWAN_MIC_LEN]);

/*
 * Encrypts or decrypts (the same operation) an FRMPayload of `len` bytes from
 * `in` to `out`, which may be the same buffer. key is the AppSKey for
 * FPort 1..255 and the NwkSKey for FPort 0; the caller chooses.
 */
int lorawan_crypto_frm_payload(struct lorawan_crypto *c, const uint8_t key[LORAWAN_KEY_LEN],
			       enum lorawan_dir dir, uint32_t devaddr, uint32_t fcnt,
			       const void *in, size_t len, void *out);

/*
 * MIC of a join-request under the AppKey: `msg` is the 19 bytes
 * MHDR | JoinEUI | DevEUI | DevNonce as on air (EUIs and DevNonce
 * little-endian); len must be LORAWAN_JOIN_REQUEST_LEN.
 */
int lorawan_crypto_join_request_mic(struct lorawan_crypto *c, const uint8_t appkey[LORAWAN_KEY_LEN],
				    const void *msg, size_t len, uint8_t mic[LORAWAN_MIC_LEN]);

#endif
