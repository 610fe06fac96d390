# Shared build settings, included by every sub-Makefile.
# Variants: default, or SAN=address,undefined (build/asan), SAN=thread (build/tsan).
.DEFAULT_GOAL := all
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

SAN ?=
ifeq ($(SAN),)
VARIANT := default
else ifeq ($(SAN),thread)
VARIANT := tsan
else
VARIANT := asan
endif
B := $(TOP)/build/$(VARIANT)

CC ?= cc
ifeq ($(origin CC),default)
CC := gcc
endif
CSTD := -std=gnu11
OPT ?= -O2 -g
WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wformat=2 -Wno-unused-parameter
# CI builds with -Werror; set WERROR=1 to get it locally.
ifneq ($(CI)$(WERROR),)
WARN += -Werror
endif
CPPFLAGS += -I$(TOP)/include -D_GNU_SOURCE
CFLAGS := $(CSTD) $(OPT) $(WARN) -fPIC -pthread $(EXTRA_CFLAGS)
LDFLAGS := -pthread $(EXTRA_LDFLAGS)
ifneq ($(SAN),)
CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer
# A UBSan report stops the program, so that a test cannot pass over one.
ifneq ($(findstring undefined,$(SAN)),)
CFLAGS += -fno-sanitize-recover=undefined
endif
LDFLAGS += -fsanitize=$(SAN)
endif

# Quiet unless V=1.
ifeq ($(V),1)
Q :=
qecho = @:
else
Q := @
qecho = @printf '  %-7s %s\n'
endif

$(B)/obj/%.o: $(TOP)/%.c
	@mkdir -p $(dir $@)
	$(qecho) CC $*.c
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

.SECONDARY:

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
