/*
 * cli_args.c: the command-line parser of quic-portal: a table of options per
 * subcommand, "--name value" or "--name=value", strict numbers, and a
 * precise message plus a pointer to --help for every mistake (exit 2).
 */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* The message and where the usage is: a whole usage would push the
   * message off a small terminal. */
  fprintf(stderr, "%s: %s\nRun '%s --help' for the usage.\n", cmd->name, msg,
          cmd->name);
  return CLI_EXIT_USAGE;
}

static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error",
                                         "none"};

static int g_log_level_given = -1;

int cli_log_level_given(void) { return g_log_level_given; }

static int apply_log_level(const cli_cmd *cmd, const char *v) {
  for (int i = 0; i < 5; i++) {
    if (strcmp(v, LOG_LEVELS[i]) == 0) {
      qp_log_set_level((qp_log_level)i);
      g_log_level_given = i;
      return 0;
    }
  }
  return cli_usage_error(cmd,
                         "invalid value '%s' for --log-level: expected one of "
                         "debug, info, warn, error, none",
                         v);
}

static int find_opt(const cli_cmd *cmd, const char *name, size_t nlen) {
  for (size_t o = 0; o < cmd->nopts; o++) {
    if (strlen(cmd->opts[o].name) == nlen &&
        strncmp(cmd->opts[o].name, name, nlen) == 0) {
      return (int)o;
    }
  }
  return -1;
}

/* --qlog DIR: the library writes one qlog trace per connection there
 * (it reads QUIC_PORTAL_QLOG_DIR when a connection starts). */
static int apply_qlog_dir(const cli_cmd *cmd, const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return cli_usage_error(cmd, "--qlog %s: not an existing directory", dir);
  setenv("QUIC_PORTAL_QLOG_DIR", dir, 1);
  return 0;
}

/* One "--name[=value]" at argv[*i]; may consume argv[*i + 1]. */
static int parse_option(const cli_cmd *cmd, int argc, char **argv, int *i,
                        cli_args *out) {
  const char *a = argv[*i];
  const char *name = a + 2;
  const char *eq = strchr(name, '=');
  size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
  bool is_qlog = nlen == 4 && strncmp(name, "qlog", 4) == 0;
  bool is_log = is_qlog || (nlen == 9 && strncmp(name, "log-level", 9) == 0);
  int id = is_log ? -1 : find_opt(cmd, name, nlen);
  if (!is_log && id < 0) {
    return cli_usage_error(cmd, "unknown option '--%.*s'", (int)nlen, name);
  }
  const cli_opt *o = is_log ? NULL : &cmd->opts[id];
  const char *optname = is_qlog ? "qlog" : is_log ? "log-level" : o->name;
  if (o && !o->arg) {
    if (eq) {
      return cli_usage_error(cmd, "option --%s takes no value", optname);
    }
  }
  const char *val = NULL;
  if (!o || o->arg) {
    if (eq) {
      val = eq + 1;
    } else if (*i + 1 < argc) {
      val = argv[++*i];
    } else {
      return cli_usage_error(cmd, "option --%s needs a value", optname);
    }
  }
  if (is_qlog) {
    return apply_qlog_dir(cmd, val);
  }
  if (is_log) {
    return apply_log_level(cmd, val);
  }
  if (out->count[id] > 0 && !o->repeatable) {
    return cli_usage_error(cmd, "option --%s given twice", optname);
  }
  if (out->count[id] >= CLI_MAX_REPEAT) {
    return cli_usage_error(cmd, "option --%s given more than %d times",
                           optname, CLI_MAX_REPEAT);
  }
  out->val[id][out->count[id]++] = val ? val : "";
  return 0;
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *out) {
  memset(out, 0, sizeof *out);
  out->cmd = cmd;
  out->pos = calloc((size_t)argc + 1, sizeof *out->pos);
  if (!out->pos) {
    cli_errorf("out of memory");
    return CLI_EXIT_FAIL;
  }
  bool only_pos = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
      fputs(cmd->usage, stdout);
      return CLI_EXIT_HELP;
    }
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = true;
    } else if (!only_pos && strncmp(a, "--", 2) == 0) {
      int rc = parse_option(cmd, argc, argv, &i, out);
      if (rc != 0) {
        return rc;
      }
    } else if (!only_pos && a[0] == '-' && a[1] != '\0') {
      return cli_usage_error(cmd, "unknown option '%s' (options start with --)",
                             a);
    } else {
      out->pos[out->npos++] = a;
    }
  }
  return 0;
}

void cli_args_free(cli_args *a) {
  free(a->pos);
  a->pos = NULL;
  a->npos = 0;
}

static int opt_index(const cli_args *a, const char *name) {
  return find_opt(a->cmd, name, strlen(name));
}

size_t cli_count(const cli_args *a, const char *name) {
  int id = opt_index(a, name);
  return id < 0 ? 0 : a->count[id];
}

const char *cli_get_nth(const cli_args *a, const char *name, size_t i) {
  int id = opt_index(a, name);
  return id < 0 || i >= a->count[id] ? NULL : a->val[id][i];
}

const char *cli_get(const cli_args *a, const char *name) {
  size_t n = cli_count(a, name);
  return n ? cli_get_nth(a, name, n - 1) : NULL;
}

bool cli_has(const cli_args *a, const char *name) {
  return cli_count(a, name) > 0;
}

int cli_parse_u64(const cli_cmd *cmd, const char *opt, const char *s,
                  uint64_t min, uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  bool ok = s[0] != '\0';
  for (const char *p = s; ok && *p; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) {
      ok = false;
    } else {
      v = v * 10 + (uint64_t)(*p - '0');
    }
  }
  if (!ok || v < min || v > max) {
    return cli_usage_error(cmd,
                           "invalid value '%s' for %s: expected an integer "
                           "from %" PRIu64 " to %" PRIu64,
                           s, opt, min, max);
  }
  *out = v;
  return 0;
}

int cli_parse_secs(const cli_cmd *cmd, const char *opt, const char *s,
                   double min, double max, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < min ||
      v > max || s[0] == '-' || s[0] == '+' || s[0] == ' ') {
    return cli_usage_error(cmd,
                           "invalid value '%s' for %s: expected seconds from "
                           "%g to %g",
                           s, opt, min, max);
  }
  *out = v;
  return 0;
}

int cli_check_ip(const cli_cmd *cmd, const char *opt, const char *host,
                 bool required) {
  unsigned char buf[sizeof(struct in6_addr)];
  bool v4ish = strspn(host, "0123456789.") == strlen(host);
  bool v6ish = strchr(host, ':') != NULL;
  if (!required && !v4ish && !v6ish) {
    return 0; /* a host name, resolved when connecting */
  }
  if (inet_pton(AF_INET, host, buf) == 1 ||
      inet_pton(AF_INET6, host, buf) == 1) {
    return 0;
  }
  return cli_usage_error(cmd,
                         "invalid address '%s' in %s: expected an IPv4 "
                         "address (192.0.2.1) or an IPv6 one ([2001:db8::1] "
                         "with a port)%s",
                         host, opt,
                         required && !v4ish && !v6ish ? ", not a name" : "");
}

int cli_parse_hostport(const cli_cmd *cmd, const char *opt, const char *s,
                       bool allow_zero, char *host, size_t hostlen,
                       uint16_t *port) {
  const char *colon = strrchr(s, ':');
  const char *h = s;
  size_t hlen = colon ? (size_t)(colon - s) : 0;
  if (colon && s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') {
    h = s + 1; /* "[::1]:443" */
    hlen -= 2;
  } else if (colon && memchr(s, ':', hlen)) {
    colon = NULL; /* a bare IPv6 address has no port */
  }
  if (!colon || hlen == 0 || hlen >= hostlen) {
    return cli_usage_error(cmd,
                           "invalid value '%s' for %s: expected HOST:PORT "
                           "(IPv6 as [ADDR]:PORT)",
                           s, opt);
  }
  uint64_t v = 0;
  char what[64];
  snprintf(what, sizeof what, "the port of %s", opt);
  int rc = cli_parse_u64(cmd, what, colon + 1, allow_zero ? 0 : 1, 65535, &v);
  if (rc != 0) {
    return rc;
  }
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (uint16_t)v;
  return cli_check_ip(cmd, opt, host, false);
}
