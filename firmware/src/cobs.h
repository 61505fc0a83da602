/* cobs.h - Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999). */
#ifndef PLATEAU_COBS_H
#define PLATEAU_COBS_H
#include <stddef.h>
#include <stdint.h>

/** Worst-case encoded size of n bytes (without the 0x00 delimiter). */
#define COBS_MAX_ENCODED(n) ((n) + (n) / 254 + 1)

/** Encode n bytes of src into dst (no delimiter appended); returns the
 *  encoded length.  dst must hold COBS_MAX_ENCODED(n) bytes. */
size_t cobs_encode(const uint8_t *src, size_t n, uint8_t *dst);
/** Decode n encoded bytes (delimiter excluded) into dst (capacity cap).
 *  Returns the decoded length, or -1 if the encoding is invalid (a zero
 *  byte, a code running past the end) or the result exceeds cap. */
long cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

#endif
