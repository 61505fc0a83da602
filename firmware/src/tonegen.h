/* tonegen.h - call-progress tones played locally to an FXS phone (TONE command). */
#ifndef PLATEAU_TONEGEN_H
#define PLATEAU_TONEGEN_H
#include <stdint.h>

enum tone_id { TONE_OFF = 0, TONE_DIAL = 1, TONE_RINGBACK = 2, TONE_BUSY = 3, TONE_CONGESTION = 4, TONE_COUNT };

typedef struct {
    uint8_t id;
    uint32_t sample;
} tonegen_t;

void tonegen_set(tonegen_t *t, uint8_t id);
/** Fill n samples of the current tone (silence when off). */
void tonegen_fill(tonegen_t *t, int16_t *out, int n);
/** Fill n samples of a sine of the given frequency and level; *phase keeps
 *  the oscillator continuous across calls (radians). */
void sine_fill(float hz, float dbm0, float *phase, int16_t *out, int n);

#endif
