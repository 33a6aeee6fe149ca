// SPDX-License-Identifier: MIT
/*
 * gwmp_load: an open-loop load generator for a GWMP v2 (Semtech UDP packet
 * forwarder protocol) server. It plays one gateway that sends PUSH_DATA
 * datagrams of `batch` rxpk each on a fixed schedule (datagram k at
 * t0 + k * batch / rate, whatever the server does), a PULL_DATA every
 * keepalive interval, and counts the PUSH_ACK/PULL_ACK answers. Prints one
 * JSON object on stdout when done.
 *
 * Each rxpk carries an unconfirmed data uplink of DevAddr base + i % devices
 * and FCnt i / devices (i = the rxpk's sequence number from 0), so that a
 * receiver can tell every uplink apart and count losses and duplicates.
 *
 * usage: gwmp_load -p PORT [-H HOST] [-r RXPK_PER_S] [-b BATCH] [-d SECONDS]
 *                  [-n DEVICES] [-a DEVADDR_BASE_HEX] [-e EUI_HEX] [-k KEEPALIVE_S]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH    64
#define DGRAM_MAX    65000
#define FRM_LEN	     10
#define PHY_LEN	     (1 + 7 + 1 + FRM_LEN + 4)
#define GWMP_VERSION 2

struct opts {
	const char *host;
	int port;
	double rate;
	int batch;
	double duration;
	uint32_t devices;
	uint32_t devaddr_base;
	uint8_t eui[8];
	double keepalive;
};

struct stats {
	uint64_t datagrams;
	uint64_t rxpk;
	uint64_t pulls;
	uint64_t send_errors;
	uint64_t push_acks;
	uint64_t pull_acks;
	uint64_t other_in;
	uint64_t late_max_ns; /* how far behind schedule a send went out, worst */
	uint64_t late_over_1ms;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t)
{
	struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u),
			      .tv_nsec = (long)(t % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static size_t base64_encode(const uint8_t *in, size_t len, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* xorshift: payload and MIC bytes need not be secret, only varied */
static uint32_t rnd(void)
{
	static uint32_t s = 2463534242u;
	s ^= s << 13;
	s ^= s >> 17;
	s ^= s << 5;
	return s;
}

static int parse_eui(const char *s, uint8_t eui[8])
{
	if (strlen(s) != 16)
		return -EINVAL;
	for (int i = 0; i < 8; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		eui[i] = (uint8_t)v;
	}
	return 0;
}

static size_t header(uint8_t *buf, uint16_t token, uint8_t ident, const uint8_t eui[8])
{
	buf[0] = GWMP_VERSION;
	buf[1] = (uint8_t)(token >> 8);
	buf[2] = (uint8_t)token;
	buf[3] = ident;
	memcpy(buf + 4, eui, 8);
	return 12;
}

/* One PUSH_DATA of n rxpk starting at sequence number seq. */
static size_t push_data(uint8_t *buf, size_t cap, const struct opts *o, uint16_t token,
			uint64_t seq, int n, uint32_t tmst)
{
	size_t len = header(buf, token, 0x00, o->eui);
	len += (size_t)snprintf((char *)buf + len, cap - len, "{\"rxpk\":[");
	for (int k = 0; k < n; k++) {
		uint64_t i = seq + (uint64_t)k;
		uint32_t addr = o->devaddr_base + (uint32_t)(i % o->devices);
		uint32_t fcnt = (uint32_t)(i / o->devices);
		uint8_t phy[PHY_LEN];
		char b64[2 * PHY_LEN];
		phy[0] = 0x40; /* unconfirmed data up, LoRaWAN R1 */
		phy[1] = (uint8_t)addr;
		phy[2] = (uint8_t)(addr >> 8);
		phy[3] = (uint8_t)(addr >> 16);
		phy[4] = (uint8_t)(addr >> 24);
		phy[5] = 0x00; /* FCtrl */
		phy[6] = (uint8_t)fcnt;
		phy[7] = (uint8_t)(fcnt >> 8);
		phy[8] = 1; /* FPort */
		for (int j = 0; j < FRM_LEN + 4; j++)
			phy[9 + j] = (uint8_t)rnd();
		base64_encode(phy, sizeof(phy), b64);
		int w = snprintf(
			(char *)buf + len, cap - len,
			"%s{\"tmst\":%" PRIu32 ",\"chan\":%d,\"rfch\":0,\"freq\":%.6f,"
			"\"stat\":1,\"modu\":\"LORA\",\"datr\":\"SF%dBW125\",\"codr\":\"4/5\","
			"\"rssi\":%d,\"lsnr\":%.1f,\"size\":%d,\"data\":\"%s\"}",
			k ? "," : "", tmst + (uint32_t)k * 1000u, (int)(i % 8),
			868.1 + 0.2 * (double)(i % 3), 7 + (int)(i % 6), -40 - (int)(rnd() % 80),
			(double)((int)(rnd() % 300) - 200) / 10.0, PHY_LEN, b64);
		if (w < 0 || (size_t)w >= cap - len)
			return 0;
		len += (size_t)w;
	}
	int w = snprintf((char *)buf + len, cap - len, "]}");
	if (w < 0 || (size_t)w >= cap - len)
		return 0;
	return len + (size_t)w;
}

static void drain(int fd, struct stats *st)
{
	uint8_t in[2048];
	for (;;) {
		ssize_t n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
		if (n < 0)
			return;
		if (n >= 4 && in[0] == GWMP_VERSION && in[3] == 0x01)
			st->push_acks++;
		else if (n >= 4 && in[0] == GWMP_VERSION && in[3] == 0x04)
			st->pull_acks++;
		else
			st->other_in++;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: gwmp_load -p PORT [-H HOST] [-r RXPK_PER_S] [-b BATCH] "
			"[-d SECONDS] [-n DEVICES] [-a DEVADDR_BASE_HEX] [-e EUI_HEX] "
			"[-k KEEPALIVE_S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = {.host = "127.0.0.1",
			 .rate = 2600,
			 .batch = 8,
			 .duration = 10,
			 .devices = 1000,
			 .devaddr_base = 0x26100000u,
			 .eui = {0xaa, 0x55, 0x5a, 0x00, 0x00, 0x00, 0xbe, 0x01},
			 .keepalive = 5};
	int c;
	while ((c = getopt(argc, argv, "H:p:r:b:d:n:a:e:k:")) != -1) {
		switch (c) {
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			o.port = atoi(optarg);
			break;
		case 'r':
			o.rate = strtod(optarg, NULL);
			break;
		case 'b':
			o.batch = atoi(optarg);
			break;
		case 'd':
			o.duration = strtod(optarg, NULL);
			break;
		case 'n':
			o.devices = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'a':
			o.devaddr_base = (uint32_t)strtoul(optarg, NULL, 16);
			break;
		case 'e':
			if (parse_eui(optarg, o.eui) < 0)
				usage();
			break;
		case 'k':
			o.keepalive = strtod(optarg, NULL);
			break;
		default:
			usage();
		}
	}
	if (o.port <= 0 || o.port > 65535 || o.rate <= 0 || o.batch < 1 || o.batch > MAX_BATCH ||
	    o.duration <= 0 || o.devices < 1 || o.keepalive <= 0)
		usage();

	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
	if (fd < 0 || inet_pton(AF_INET, o.host, &sa.sin_addr) != 1 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("gwmp_load: socket");
		return 1;
	}
	int sndbuf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));

	static uint8_t buf[DGRAM_MAX];
	struct stats st = {0};
	uint64_t period_ns = (uint64_t)(1e9 * o.batch / o.rate);
	uint64_t total = (uint64_t)(o.rate * o.duration + 0.5);
	uint64_t keep_ns = (uint64_t)(o.keepalive * 1e9);
	uint16_t token = (uint16_t)rnd();
	uint64_t t0 = now_ns() + 1000000, next_pull = t0;
	uint64_t seq = 0;

	for (uint64_t k = 0; seq < total; k++) {
		uint64_t due = t0 + k * period_ns;
		if (due >= next_pull) {
			size_t n = header(buf, ++token, 0x02, o.eui);
			if (send(fd, buf, n, 0) < 0)
				st.send_errors++;
			st.pulls++;
			next_pull += keep_ns;
		}
		sleep_until_ns(due);
		uint64_t late = now_ns() - due;
		if (late > st.late_max_ns)
			st.late_max_ns = late;
		if (late > 1000000)
			st.late_over_1ms++;
		int n = (int)(total - seq < (uint64_t)o.batch ? total - seq : (uint64_t)o.batch);
		/* the concentrator's µs counter, from the schedule */
		uint32_t tmst = (uint32_t)((due - t0) / 1000u);
		size_t len = push_data(buf, sizeof(buf), &o, ++token, seq, n, tmst);
		if (!len || send(fd, buf, len, 0) < 0) {
			st.send_errors++;
		} else {
			st.datagrams++;
			st.rxpk += (uint64_t)n;
		}
		seq += (uint64_t)n;
		drain(fd, &st);
	}
	uint64_t t_end = now_ns();
	/* late acknowledgements */
	for (int i = 0; i < 50; i++) {
		usleep(10000);
		drain(fd, &st);
	}
	double elapsed = (double)(t_end - t0) / 1e9;
	printf("{\"target_rxpk_per_s\":%.1f,\"batch\":%d,\"duration_s\":%.3f,"
	       "\"datagrams_sent\":%" PRIu64 ",\"rxpk_sent\":%" PRIu64
	       ",\"pull_data_sent\":%" PRIu64 ",\"send_errors\":%" PRIu64 ",\"push_acks\":%" PRIu64
	       ",\"pull_acks\":%" PRIu64 ",\"other_datagrams_in\":%" PRIu64
	       ",\"sent_rxpk_per_s\":%.1f,"
	       "\"late_max_ms\":%.3f,\"late_over_1ms\":%" PRIu64 ",\"devices\":%" PRIu32
	       ",\"devaddr_base\":\"%08" PRIx32 "\"}\n",
	       o.rate, o.batch, elapsed, st.datagrams, st.rxpk, st.pulls, st.send_errors,
	       st.push_acks, st.pull_acks, st.other_in,
	       elapsed > 0 ? (double)st.rxpk / elapsed : 0.0, (double)st.late_max_ns / 1e6,
	       st.late_over_1ms, o.devices, o.devaddr_base);
	close(fd);
	return st.send_errors ? 1 : 0;
}
