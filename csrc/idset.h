/* A set of ids kept as 96-bit keyed digests (SipHash-2-4-128 under a key the
 * caller draws at random), each with a 32-bit value: 16 bytes a slot, open
 * addressing with linear probing, in 256 parts (by the digest's top byte)
 * each grown by half when 85% full, so a growth copies 1/256 of the set and
 * memory never jumps by a whole table's worth. It is what
 * `llmrelay batch` remembers of a million custom_ids (a Lua table of the
 * strings themselves costs about 250 bytes each). Two distinct ids share a
 * digest with probability about n^2 / 2^97 (1e-17 at a million ids), and the
 * key is secret and new each run, so no input can aim at a collision.
 * Sans-I/O: no Lua, no clock. */
#ifndef LR_IDSET_H
#define LR_IDSET_H
#include <stddef.h>
#include <stdint.h>

#define LR_IDSET_PARTS 256

typedef struct {
  uint64_t *lo;      /* [cap] the digest's low 64 bits; 0 = empty slot */
  uint32_t *hi;      /* [cap] its next 32 bits */
  uint32_t *val;     /* [cap] the value */
  size_t cap, n;
} lr_idpart;

typedef struct {
  uint64_t k0, k1;   /* the SipHash key */
  size_t n;          /* ids in the set */
  lr_idpart part[LR_IDSET_PARTS];
} lr_idset;

typedef struct {
  uint64_t lo;
  uint32_t hi;
} lr_iddigest;

void lr_siphash128(uint64_t k0, uint64_t k1, const void *data, size_t len, uint64_t out[2]);

void lr_idset_init(lr_idset *s, uint64_t k0, uint64_t k1);
void lr_idset_free(lr_idset *s);
lr_iddigest lr_idset_digest(const lr_idset *s, const void *id, size_t len);
/* The value of d (1), or 0 when d is not in the set. */
int lr_idset_get(const lr_idset *s, lr_iddigest d, uint32_t *val);
/* Sets d's value (adding d): 1 added, 0 replaced (*old set when old), -1 out of memory. */
int lr_idset_put(lr_idset *s, lr_iddigest d, uint32_t val, uint32_t *old);
/* Bytes the slots take. */
size_t lr_idset_bytes(const lr_idset *s);

#endif
