/* g711.c - mu-law companding as in ITU-T G.711 (bias 0x84, 8 segments). */
#include "g711.h"

uint8_t ulaw_encode(int16_t pcm)
{
    int x = pcm;
    uint8_t sign = 0;
    if (x < 0) {
        x = -x;
        sign = 0x80;
    }
    if (x > 32635)
        x = 32635;
    x += 0x84;
    int seg = 7;
    for (int mask = 0x4000; seg > 0 && !(x & mask); mask >>= 1)
        seg--;
    uint8_t mant = (uint8_t)((x >> (seg + 3)) & 0x0F);
    return (uint8_t)~(sign | (seg << 4) | mant);
}

int16_t ulaw_decode(uint8_t u)
{
    u = (uint8_t)~u;
    int seg = (u >> 4) & 7;
    int x = ((((int)u & 0x0F) << 3) + 0x84) << seg;
    x -= 0x84;
    return (int16_t)((u & 0x80) ? -x : x);
}
