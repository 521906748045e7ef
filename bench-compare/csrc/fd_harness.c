/* Benchmark harness around Debian's libfreediameter (1.2.x): initialise the core, load the
 * DCCA/3GPP dictionary extensions, and parse a message the way a freeDiameter node does on
 * receive: fd_msg_parse_buffer, then fd_msg_parse_dict, then fd_msg_free.
 *
 * Built by build.rs with the `cc` crate; called from Rust through bench_compare::freediameter.
 */
#include <freeDiameter/freeDiameter-host.h>
#include <freeDiameter/libfdcore.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FD_BENCH_EXT_DIR
#define FD_BENCH_EXT_DIR "/usr/lib/freeDiameter"
#endif

static void fd_bench_quiet_logger(int level, const char *format, va_list args)
{
	(void)level;
	(void)format;
	(void)args;
}

static int fd_bench_ready = 0;

/* Returns 0 when the core is initialised and the dictionaries are loaded, else an errno-like
 * code (negative for a step of ours that failed). Idempotent. */
int fd_bench_init(void)
{
	char path[] = "/tmp/fd_bench_XXXXXX";
	FILE *f;
	int fd, ret;

	if (fd_bench_ready)
		return 0;
	/* Silence the library before it says anything. */
	fd_g_debug_lvl = FD_LOG_FATAL;
	ret = fd_core_initialize();
	if (ret != 0)
		return ret;
	fd_log_handler_register(fd_bench_quiet_logger);

	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		unlink(path);
		return -2;
	}
	/* Never started: only the dictionary matters. Load order as the extensions require. */
	fprintf(f,
		"Identity = \"bench.fd.example.net\";\n"
		"Realm = \"fd.example.net\";\n"
		"Port = 0;\n"
		"SecPort = 0;\n"
		"No_SCTP;\n"
		"No_IPv6;\n"
		"LoadExtension = \"%s/dict_nasreq.fdx\";\n"
		"LoadExtension = \"%s/dict_dcca.fdx\";\n"
		"LoadExtension = \"%s/dict_dcca_3gpp.fdx\";\n",
		FD_BENCH_EXT_DIR, FD_BENCH_EXT_DIR, FD_BENCH_EXT_DIR);
	fclose(f);
	ret = fd_core_parseconf(path);
	unlink(path);
	if (ret != 0)
		return ret;
	fd_bench_ready = 1;
	return 0;
}

/* One receive-side parse of `len` bytes: copy into a malloc'ed buffer (freeDiameter takes
 * ownership of the receive buffer), parse the framing, resolve every AVP against the
 * dictionary, free. Returns 0 on success or the first failing call's error code. */
int fd_bench_parse(const unsigned char *buf, size_t len)
{
	struct msg *msg = NULL;
	struct fd_pei pei;
	uint8_t *copy;
	int ret;

	copy = malloc(len);
	if (copy == NULL)
		return ENOMEM;
	memcpy(copy, buf, len);
	ret = fd_msg_parse_buffer(&copy, len, &msg);
	if (ret != 0) {
		free(copy);
		return ret;
	}
	memset(&pei, 0, sizeof(pei));
	ret = fd_msg_parse_dict(msg, fd_g_config->cnf_dict, &pei);
	fd_msg_free(msg);
	return ret;
}

/* As fd_bench_parse, then counts the AVPs (nested ones included) that the dictionary
 * resolved (`known`) and those it did not (`unknown`), to show parse_dict did real work. */
int fd_bench_check(const unsigned char *buf, size_t len, int *known, int *unknown)
{
	struct msg *msg = NULL;
	struct fd_pei pei;
	struct dict_object *model;
	msg_or_avp *cur;
	uint8_t *copy;
	int ret, depth = 0;

	*known = 0;
	*unknown = 0;
	copy = malloc(len);
	if (copy == NULL)
		return ENOMEM;
	memcpy(copy, buf, len);
	ret = fd_msg_parse_buffer(&copy, len, &msg);
	if (ret != 0) {
		free(copy);
		return ret;
	}
	memset(&pei, 0, sizeof(pei));
	ret = fd_msg_parse_dict(msg, fd_g_config->cnf_dict, &pei);
	if (ret == 0) {
		model = NULL;
		if (fd_msg_model(msg, &model) != 0 || model == NULL)
			ret = -3; /* the command itself is unknown */
	}
	cur = msg;
	while (ret == 0 && fd_msg_browse(cur, MSG_BRW_WALK, &cur, &depth) == 0 && cur != NULL) {
		model = NULL;
		if (fd_msg_model(cur, &model) == 0 && model != NULL)
			(*known)++;
		else
			(*unknown)++;
	}
	fd_msg_free(msg);
	return ret;
}
