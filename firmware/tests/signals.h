/* signals.h - test signal helpers: tones, noise, mu-law round trip. */
#ifndef PLATEAU_SIGNALS_H
#define PLATEAU_SIGNALS_H
#include <stdint.h>

/** Add a sine (level in dBm0, 0 = no change if dbm0 < -200) to x[0..n). */
void sig_add_tone(int16_t *x, int n, float hz, float dbm0, float phase);
/** Add white noise of the given level (dBm0). */
void sig_add_noise(int16_t *x, int n, float dbm0, uint32_t *seed);
/** Pass through G.711 mu-law and back, as the codec does. */
void sig_ulaw(int16_t *x, int n);

#endif
