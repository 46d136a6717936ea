// SPDX-License-Identifier: MIT
/*
 * The VERSION payload: major and minor, then NUL-terminated JSON of the
 * form {"capabilities":{...}}.  Both ends encode their own capabilities
 * and decode the peer's here, with one rule for a malformed one: a
 * capability that is present must be a positive integer that fits its
 * field; one that is absent keeps the spec's default.  Members this code
 * does not know (migration, twin_socket, ...) are ignored.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "vfu/vfu.h"

void vfu_caps_default(struct vfu_caps *c)
{
	*c = (struct vfu_caps){
		.max_fds = VFIO_USER_DEFAULT_MAX_FDS,
		.max_xfer = VFIO_USER_DEFAULT_MAX_XFER,
	};
}

/* Append ,"key":value (or "key":value first) when value is not 0. */
static int put_cap(char *buf, size_t size, size_t *at, const char *key, uint64_t value)
{
	int n;

	if (!value)
		return 0;
	n = snprintf(buf + *at, size - *at, "%s\"%s\":%" PRIu64, buf[*at - 1] == '{' ? "" : ",",
		     key, value);
	if (n < 0 || (size_t)n >= size - *at)
		return -ENOSPC;
	*at += (size_t)n;
	return 0;
}

int vfu_version_encode(void *buf, size_t size, uint16_t major, uint16_t minor,
		       const struct vfu_caps *caps)
{
	struct vfio_user_version *v = buf;
	size_t jsize, at;
	char *j;
	int n, rc;

	if (size < sizeof(*v) + 1)
		return -ENOSPC;
	v->major = major;
	v->minor = minor;
	j = v->data;
	jsize = size - sizeof(*v);
	n = snprintf(j, jsize, "{\"%s\":{", VFIO_USER_CAP_OBJECT);
	if (n < 0 || (size_t)n >= jsize)
		return -ENOSPC;
	at = (size_t)n;
	rc = put_cap(j, jsize, &at, VFIO_USER_CAP_MAX_FDS, caps->max_fds);
	if (!rc)
		rc = put_cap(j, jsize, &at, VFIO_USER_CAP_MAX_XFER, caps->max_xfer);
	if (!rc)
		rc = put_cap(j, jsize, &at, VFIO_USER_CAP_MAX_DMA_MAPS, caps->max_dma_maps);
	if (!rc)
		rc = put_cap(j, jsize, &at, VFIO_USER_CAP_PGSIZES, caps->pgsizes);
	if (rc || jsize - at < 3)
		return -ENOSPC;
	memcpy(j + at, "}}", 3);
	return (int)(sizeof(*v) + at + 3); /* the NUL is part of the data */
}

/* A present capability: a JSON integer in [1, max]. */
static int get_cap(json_object *caps, const char *key, uint64_t max, uint64_t *out)
{
	json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(caps, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 1 || (uint64_t)n > max)
		return -EINVAL;
	*out = (uint64_t)n;
	return 0;
}

static int decode_caps(json_object *caps, struct vfu_caps *c)
{
	uint64_t fds = c->max_fds, xfer = c->max_xfer, maps = c->max_dma_maps;
	uint64_t pgsizes = c->pgsizes;
	int rc;

	if (!json_object_is_type(caps, json_type_object))
		return -EINVAL;
	rc = get_cap(caps, VFIO_USER_CAP_MAX_FDS, UINT32_MAX, &fds);
	if (!rc)
		rc = get_cap(caps, VFIO_USER_CAP_MAX_XFER, UINT32_MAX, &xfer);
	if (!rc)
		rc = get_cap(caps, VFIO_USER_CAP_MAX_DMA_MAPS, UINT32_MAX, &maps);
	if (!rc)
		rc = get_cap(caps, VFIO_USER_CAP_PGSIZES, INT64_MAX, &pgsizes);
	if (rc)
		return rc;
	*c = (struct vfu_caps){ (uint32_t)fds, (uint32_t)xfer, (uint32_t)maps, pgsizes };
	return 0;
}

static int decode_json(const char *text, size_t len, struct vfu_caps *c)
{
	json_tokener *tok = json_tokener_new();
	json_object *o, *caps;
	int rc = 0;

	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	if (!o || !json_object_is_type(o, json_type_object))
		rc = -EINVAL;
	else if (json_object_object_get_ex(o, VFIO_USER_CAP_OBJECT, &caps))
		rc = decode_caps(caps, c);
	json_object_put(o);
	return rc;
}

int vfu_version_decode(const void *payload, uint32_t len, uint16_t *major,
		       uint16_t *minor, struct vfu_caps *caps)
{
	const struct vfio_user_version *v = payload;
	uint32_t jlen;

	if (len < sizeof(*v))
		return -EINVAL;
	*major = v->major;
	*minor = v->minor;
	jlen = len - (uint32_t)sizeof(*v);
	if (!jlen)
		return 0;
	if (v->data[jlen - 1] != '\0')
		return -EINVAL;
	return decode_json(v->data, jlen - 1, caps);
}
