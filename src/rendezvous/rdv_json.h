/*
 * rdv_json.h: the small JSON writer and reader behind rendezvous records.
 *
 * Both work on caller buffers with fixed bounds and never allocate. The
 * writer produces compact JSON; the reader is strict RFC 8259 (no trailing
 * commas, no comments, no leading zeros, well-formed UTF-8) and limits
 * nesting, object members and string lengths. Every reader failure is
 * QP_ERR_PROTOCOL with a message that names the field and the byte offset.
 */
#ifndef QP_RDV_JSON_H
#define QP_RDV_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of objects and arrays the reader accepts. */
#define RDV_JSON_MAX_DEPTH 8
/* Most members in one object, most elements in one skipped array. */
#define RDV_JSON_MAX_MEMBERS 64
/* Longest member name. */
#define RDV_JSON_NAME_MAX 32

/* ---- writer ---- */

typedef struct rdv_json_writer {
  char *buf;
  size_t cap;
  size_t len;      /* bytes written so far, excluding the NUL */
  bool overflow;   /* set when anything did not fit; output is then unusable */
  bool need_comma; /* a value was written at this level */
} rdv_json_writer;

void rdv_json_writer_init(rdv_json_writer *w, char *buf, size_t cap);
void rdv_json_begin_object(rdv_json_writer *w);
void rdv_json_end_object(rdv_json_writer *w);
void rdv_json_begin_array(rdv_json_writer *w);
void rdv_json_end_array(rdv_json_writer *w);
/* A member name; the next call writes its value. */
void rdv_json_name(rdv_json_writer *w, const char *name);
/* A NUL-terminated string, escaped as JSON requires. */
void rdv_json_string(rdv_json_writer *w, const char *s);
void rdv_json_uint(rdv_json_writer *w, uint64_t v);
void rdv_json_int(rdv_json_writer *w, int64_t v);

/* ---- reader ---- */

typedef struct rdv_json_reader {
  const char *start;
  const char *p;
  const char *end;
  int depth;
} rdv_json_reader;

void rdv_json_reader_init(rdv_json_reader *r, const char *text, size_t len);

/* Called for each member of an object, with the reader on its value; must
 * consume the value. name is the decoded member name. */
typedef int (*rdv_json_member_cb)(rdv_json_reader *r, const char *name,
                                  void *ctx);
/* Called for each element of an array, index counting from 0. */
typedef int (*rdv_json_element_cb)(rdv_json_reader *r, size_t index, void *ctx);

/* Read an object, calling on_member for each member. what names the object
 * in messages. */
int rdv_json_read_object(rdv_json_reader *r, const char *what,
                         rdv_json_member_cb on_member, void *ctx);
/* Read an array of at most max elements. */
int rdv_json_read_array(rdv_json_reader *r, const char *what, size_t max,
                        rdv_json_element_cb on_element, void *ctx);
/* Read a string into out (cap bytes including the NUL). Fails if the value
 * is not a string, does not fit, or contains U+0000. */
int rdv_json_read_string(rdv_json_reader *r, const char *what, char *out,
                         size_t cap);
/* Read an integer (no fraction, no exponent) within [min, max]. */
int rdv_json_read_int(rdv_json_reader *r, const char *what, int64_t min,
                      int64_t max, int64_t *out);
/* Read and discard any value (used for members a newer writer added). */
int rdv_json_skip_value(rdv_json_reader *r, const char *what);
/* Skip the value of member name; messages name it in quotes. */
int rdv_json_skip_member(rdv_json_reader *r, const char *name);
/* Fail unless only whitespace is left. */
int rdv_json_read_end(rdv_json_reader *r);
/* Fail with QP_ERR_PROTOCOL, naming what and the current byte offset. */
int rdv_json_fail(const rdv_json_reader *r, const char *what,
                  const char *problem);

#endif
