#include "daemon.h"

uint64_t labgwd_next_seq(struct labgwd *d)
{
	return ++d->seq;
}
