/* cobs.c - COBS encode/decode (Cheshire & Baker, IEEE/ACM ToN 7(2), 1999). */
#include "cobs.h"

size_t cobs_encode(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t out = 1, code_at = 0;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
        } else {
            dst[out++] = src[i];
            if (++code == 0xFF) {
                /* A full 254-byte block: its code implies no zero follows;
                 * open a new block only if data remains (canonical form,
                 * as the Wikipedia/Cheshire examples: no trailing 0x01). */
                dst[code_at] = code;
                if (i + 1 == n)
                    return out;
                code_at = out++;
                code = 1;
            }
        }
    }
    dst[code_at] = code;
    return out;
}

long cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t i = 0, out = 0;
    while (i < n) {
        uint8_t code = src[i++];
        if (code == 0)
            return -1;
        for (uint8_t k = 1; k < code; k++) {
            if (i >= n || src[i] == 0 || out >= cap)
                return -1;
            dst[out++] = src[i++];
        }
        /* A code below 0xFF stands for a zero, except after the last block. */
        if (code != 0xFF && i < n) {
            if (out >= cap)
                return -1;
            dst[out++] = 0;
        }
    }
    return (long)out;
}
