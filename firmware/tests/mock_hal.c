/* mock_hal.c - the test port of hal.h. */
#include "mock_hal.h"
#include "g711.h"
#include <string.h>

mock_hal_t mock;

void mock_reset(uint8_t n, const uint8_t *kinds)
{
    memset(&mock, 0, sizeof mock);
    mock.n_ports = n;
    memcpy(mock.kinds, kinds, n);
    frame_rx_init(&mock.host_rx);
}

uint8_t hal_port_count(void) { return mock.n_ports; }
uint8_t hal_port_kind(uint8_t port) { return mock.kinds[port]; }
const char *hal_serial_number(void) { return "MOCK01"; }
uint32_t hal_millis(void) { return mock.now; }

int hal_serial_read(uint8_t *buf, int max)
{
    int n = mock.in_len - mock.in_pos;
    if (n > max)
        n = max;
    memcpy(buf, mock.serial_in + mock.in_pos, (size_t)n);
    mock.in_pos += n;
    if (mock.in_pos == mock.in_len)
        mock.in_pos = mock.in_len = 0;
    return n;
}

bool hal_serial_write(const uint8_t *buf, int len)
{
    if (mock.serial_refuse || mock.out_len + len > (int)sizeof mock.serial_out)
        return false;
    memcpy(mock.serial_out + mock.out_len, buf, (size_t)len);
    mock.out_len += len;
    return true;
}

void hal_slic_ring(uint8_t port, bool on)
{
    if (mock.slic_ring[port] != on)
        mock.ring_changes[port]++;
    mock.slic_ring[port] = on;
}
bool hal_slic_offhook(uint8_t port) { return mock.slic_offhook[port]; }
void hal_slic_polarity(uint8_t port, bool reversed) { mock.slic_pol[port] = reversed; }
bool hal_daa_ring(uint8_t port) { return mock.daa_ring[port]; }
bool hal_daa_polarity(uint8_t port) { return mock.daa_pol[port]; }
void hal_daa_offhook(uint8_t port, bool closed) { mock.daa_relay[port] = closed; }
int16_t hal_line_measure(uint8_t port) { return mock.line_value[port]; }
uint8_t hal_line_alarms(uint8_t port) { return mock.alarms[port]; }

bool hal_codec_read(uint8_t port, uint8_t ulaw[HAL_FRAME_SAMPLES])
{
    if (!mock.codec_ready[port])
        return false;
    mock.codec_ready[port] = false;
    memcpy(ulaw, mock.codec_in[port], HAL_FRAME_SAMPLES);
    return true;
}

void hal_codec_write(uint8_t port, const uint8_t ulaw[HAL_FRAME_SAMPLES])
{
    for (int i = 0; i < HAL_FRAME_SAMPLES && mock.captured[port] < MOCK_CAPTURE; i++)
        mock.capture[port][mock.captured[port]++] = ulaw_decode(ulaw[i]);
}

void hal_watchdog_kick(void) { mock.kicks++; }

void mock_run(board_t *b, uint32_t ms)
{
    for (uint32_t t = 0; t < ms; t++) {
        mock.now++;
        if (mock.now % 20 == 0) {
            for (uint8_t p = 0; p < mock.n_ports; p++) {
                int16_t pcm[HAL_FRAME_SAMPLES] = {0};
                if (mock.source[p])
                    mock.source[p](p, mock.now, pcm);
                for (int i = 0; i < HAL_FRAME_SAMPLES; i++)
                    mock.codec_in[p][i] = ulaw_encode(pcm[i]);
                mock.codec_ready[p] = true;
            }
        }
        if (b)
            board_poll(b);
    }
}

void mock_host_raw(const uint8_t *bytes, int n)
{
    memcpy(mock.serial_in + mock.in_len, bytes, (size_t)n);
    mock.in_len += n;
}

void mock_host_send(uint8_t type, uint8_t port, const uint8_t *payload, uint16_t len)
{
    uint8_t out[FRAME_MAX_ENCODED];
    int n = frame_encode(type, mock.host_seq++, port, payload, len, out);
    mock_host_raw(out, n);
}

bool mock_host_recv(frame_t *f)
{
    while (mock.out_pos < mock.out_len)
        if (frame_rx_byte(&mock.host_rx, mock.serial_out[mock.out_pos++], f))
            return true;
    return false;
}

bool mock_host_expect(uint8_t type, frame_t *f)
{
    while (mock_host_recv(f))
        if (f->type == type)
            return true;
    return false;
}

void mock_host_flush(void)
{
    mock.out_pos = mock.out_len;
}
