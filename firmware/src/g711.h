/* g711.h - ITU-T G.711 mu-law companding. */
#ifndef PLATEAU_G711_H
#define PLATEAU_G711_H
#include <stdint.h>

#define ULAW_SILENCE 0xFF
/** Linear 16-bit sample to mu-law (G.711 section 3, segment encoding). */
uint8_t ulaw_encode(int16_t pcm);
/** mu-law to linear 16-bit sample (range +-32124). */
int16_t ulaw_decode(uint8_t u);
/** Amplitude of a 0 dBm0 sine in the 16-bit linear scale of ulaw_decode()
 *  (G.711: the mu-law maximum is +3.17 dBm0). */
#define DBM0_AMPLITUDE 22670.0f

#endif
