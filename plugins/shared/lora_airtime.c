#include "lora_airtime.h"

#include <math.h>

uint64_t lora_airtime_us(int sf, uint32_t bw_hz, int cr, size_t len, int preamble, bool crc)
{
	if (sf < 5 || sf > 12 || bw_hz == 0 || cr < 5 || cr > 8 || len > 255 || preamble < 0)
		return 0;
	double tsym = (double)(1u << sf) / (double)bw_hz; /* seconds */
	int de = tsym >= 0.016 ? 1 : 0;
	double num = 8.0 * (double)len - 4.0 * sf + 28 + (crc ? 16 : 0);
	double den = 4.0 * (sf - 2 * de);
	double n = ceil(num / den);
	double payload_syms = 8 + (n > 0 ? n * cr : 0); /* cr = 4 + CR index */
	double t = ((double)preamble + 4.25 + payload_syms) * tsym;
	return (uint64_t)(t * 1e6 + 0.5);
}
