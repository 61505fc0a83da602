/* crc16.c - CRC-16/CCITT-FALSE, bitwise (small flash; frames are short). */
#include "crc16.h"

uint16_t crc16_update(uint16_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

uint16_t crc16(const uint8_t *p, size_t n)
{
    return crc16_update(CRC16_INIT, p, n);
}
