/* Hexadecimal digits, for the parsers of addresses and byte strings in
 * frames (daemon/pcapng.c, plugins/ble). Pure, header-only. */
#ifndef LABGW_HEX_H
#define LABGW_HEX_H

/* The value of one hex digit (either case), or -1. */
static inline int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
