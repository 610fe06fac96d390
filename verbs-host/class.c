// SPDX-License-Identifier: MIT
/* The device classes vbusd knows, by name (no central numeric registry). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "vbusd.h"

static const struct vbd_class *const classes[] = {
	&vbd_class_echo,
	&vbd_class_vrdma,
};

const struct vbd_class *vbd_class_find(const char *name)
{
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strcmp(classes[i]->name, name))
			return classes[i];
	return NULL;
}

const char *vbd_dev_attr(const struct vbd_dev *d, const char *key)
{
	for (int i = 0; i < d->n_attrs; i++)
		if (!strcmp(d->attr_key[i], key))
			return d->attr_val[i];
	return NULL;
}

int vbd_dev_set_attr(struct vbd_dev *d, const char *key, const char *val)
{
	int i;

	if (strlen(key) >= sizeof(d->attr_key[0]) || strlen(val) >= sizeof(d->attr_val[0]))
		return -E2BIG;
	for (i = 0; i < d->n_attrs; i++)
		if (!strcmp(d->attr_key[i], key))
			break;
	if (i == VBD_MAX_ATTRS)
		return -E2BIG;
	if (i == d->n_attrs) {
		snprintf(d->attr_key[i], sizeof(d->attr_key[i]), "%s", key);
		d->n_attrs++;
	}
	snprintf(d->attr_val[i], sizeof(d->attr_val[i]), "%s", val);
	return 0;
}
