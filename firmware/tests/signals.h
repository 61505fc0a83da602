/* signals.h - test signal helpers: tones, noise, mu-law round trip. */
#ifndef PLATEAU_SIGNALS_H
#define PLATEAU_SIGNALS_H
#include <stdint.h>

/** Add a sine (level in dBm0, 0 = no change if dbm0 < -200) to x[0..n). */
void sig_add_tone(int16_t *x, int n, float hz, float dbm0, float phase);
/** Add white noise of the given level (dBm0). */
void sig_add_noise(int16_t *x, int n, float dbm0, uint32_t *seed);
/** Add a cadenced tone from sample 0: f1 (and f2 if > 0) at dbm0 each, on
 *  and off for the alternating durations ms[0..nms) (on first), repeated. */
void sig_add_cadence(int16_t *x, int n, float f1, float f2, float dbm0, const int *ms, int nms);
/** Pass through G.711 mu-law and back, as the codec does. */
void sig_ulaw(int16_t *x, int n);

#endif
