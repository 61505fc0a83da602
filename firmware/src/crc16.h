/* crc16.h - CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout). */
#ifndef PLATEAU_CRC16_H
#define PLATEAU_CRC16_H
#include <stddef.h>
#include <stdint.h>

#define CRC16_INIT 0xFFFFu
/** Continue a CRC over n more bytes (start with CRC16_INIT). */
uint16_t crc16_update(uint16_t crc, const uint8_t *p, size_t n);
/** CRC-16/CCITT-FALSE of a buffer; check value of "123456789" is 0x29B1. */
uint16_t crc16(const uint8_t *p, size_t n);

#endif
