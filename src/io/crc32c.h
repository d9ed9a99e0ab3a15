/* crc32c.h: CRC32C (Castagnoli, reflected polynomial 0x82F63B78, as iSCSI, LevelDB and
 * TensorFlow use it), for the TFRecord event files (events.c) and TF2 checkpoints
 * (tfckpt.c). Thread-safe: the table is built once. */
#ifndef CG_IO_CRC32C_H
#define CG_IO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of n bytes (RFC 3720's test vectors: 32 zero bytes give 0x8A9136AA). */
uint32_t cg_crc32c(const void *p, size_t n);
/* The masked form LevelDB, TFRecord and TensorFlow store (rotated right by 15 bits plus
 * 0xa282ead8), because the CRC of data that itself holds CRCs is weak. */
uint32_t cg_crc32c_mask(uint32_t crc);

#endif
