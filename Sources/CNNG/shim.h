// Debian 12's libnng-dev (1.5.2) ships headers under /usr/include/nng and no pkg-config file,
// so the system-library target names the library directly in module.modulemap.
#ifndef CHORUS_CNNG_SHIM_H
#define CHORUS_CNNG_SHIM_H

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>

// Swift imports `#define NAME "literal"` and `#define NAME (-1)`, but not macros that expand to
// other macros or expressions. These helpers keep every constant the transport relies on behind
// one spelling that always imports, so a future header change cannot silently drop one.

/// NNG_DURATION_INFINITE: "wait forever" for timeouts and the REQ resend timer.
static inline nng_duration chorus_nng_duration_infinite(void) { return NNG_DURATION_INFINITE; }

/// NNG_FLAG_NONBLOCK: start a dialer without waiting for the first connection.
static inline int chorus_nng_flag_nonblock(void) { return NNG_FLAG_NONBLOCK; }

static inline const char *chorus_nng_opt_recvmaxsz(void) { return NNG_OPT_RECVMAXSZ; }
static inline const char *chorus_nng_opt_reconnmint(void) { return NNG_OPT_RECONNMINT; }
static inline const char *chorus_nng_opt_reconnmaxt(void) { return NNG_OPT_RECONNMAXT; }
static inline const char *chorus_nng_opt_req_resendtime(void) { return NNG_OPT_REQ_RESENDTIME; }
static inline const char *chorus_nng_opt_tls_config(void) { return NNG_OPT_TLS_CONFIG; }
static inline const char *chorus_nng_opt_tcp_bound_port(void) { return NNG_OPT_TCP_BOUND_PORT; }
static inline const char *chorus_nng_opt_tcp_nodelay(void) { return NNG_OPT_TCP_NODELAY; }

#endif
