# K12 Panel Cloud Sync — build, test and run.
#   make deps      install what is missing (Debian packages, the Kafka broker jars)
#   make           build every library, service, tool and test
#   make test      install, build, start PostgreSQL + Kafka + the emulator, run every test
#   make demo      bring the whole suite up on the cloud emulator
#   make SAN=address,undefined BUILD=build/asan   sanitizer build
SHELL := /bin/sh
# `make` alone builds everything (the first rule below would otherwise be a module archive).
.DEFAULT_GOAL := all
CC ?= gcc
BUILD ?= build
SAN ?=
VERSION := 0.1.0
PKGS := rdkafka libcurl libprotobuf-c libpq jansson openssl cjose

# The schema version a build expects is the number of the newest migration file.
SCHEMA_VERSION := $(shell ls db/migrations 2>/dev/null | sed -n 's/^\([0-9][0-9][0-9][0-9]\)_.*\.sql$$/\1/p' | sort -n | tail -1 | sed 's/^0*//')

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -Wall -Wextra -Werror -Wformat=2 -Wno-format-nonliteral -fno-common -pthread -MMD -MP
CPPFLAGS += -D_GNU_SOURCE -Ilib -I$(BUILD)/gen $(PKG_CFLAGS) -DPANEL_VERSION='"$(VERSION)"'
LDLIBS += $(PKG_LIBS) -lcivetweb -lpthread -lm
ifneq ($(SAN),)
CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=$(SAN)
endif

PROTO := proto/panel/v1/events.proto
GEN_C := $(BUILD)/gen/panel/v1/events.pb-c.c
GEN_H := $(BUILD)/gen/panel/v1/events.pb-c.h
# Short names for the enum values (PB_RUN_KIND_FULL), included instead of GEN_H.
PB_SHORT_H := $(BUILD)/gen/panel/v1/pb_short_names.h
LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/events.pb-c.o
LIBPANEL := $(BUILD)/libpanel.a
STAMP := $(BUILD)/obj/empty.o
# Rewritten only when the newest migration changes, so that exactly the objects that include
# it (through lib/pg.h) are rebuilt.
SCHEMA_H := $(BUILD)/gen/panel_schema_version.h

# Programs: one directory, one binary. Module archives (everything but main.c) are what the
# unit tests of that program link.
SERVICES := $(notdir $(wildcard services/*))
PROGRAMS :=
define program
PROGRAMS += $(BUILD)/bin/$(1)
$(1)_SRCS := $(wildcard $(2)/*.c)
$(1)_MOD_OBJS := $$(patsubst %.c,$(BUILD)/obj/%.o,$$(filter-out $(2)/main.c,$$($(1)_SRCS)))
$(BUILD)/mod-$(3).a: $$($(1)_MOD_OBJS) | $(STAMP)
	rm -f $$@ && ar rcs $$@ $$^ $(BUILD)/obj/empty.o
$(BUILD)/bin/$(1): $(BUILD)/obj/$(2)/main.o $(BUILD)/mod-$(3).a $(LIBPANEL)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call program,panel-$(s),services/$(s),$(s))))
$(eval $(call program,panel-emulator,emulator,emulator))
$(eval $(call program,panelctl,tools/panelctl,panelctl))
ifneq ($(wildcard examples/subscriber/main.c),)
$(eval $(call program,panel-subscriber,examples/subscriber,subscriber))
endif

# Tests: tests/unit/<module>/test_*.c link that module's archive (lib = libpanel only);
# tests/integration/test_*.c need PostgreSQL, Kafka and the emulator (tests/run.py starts them).
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_BINS := $(INTEG_SRCS:%.c=$(BUILD)/%)
# Helpers shared by the C tests (tests/common/*.c, linked into every test; headers by -Itests/common).
TEST_HELPERS := $(wildcard tests/common/*.c)
TEST_HELPER_OBJS := $(TEST_HELPERS:%.c=$(BUILD)/obj/%.o)

.PHONY: FORCE all build tests deps test test-unit demo migrate infra-up infra-down format \
        format-check lint docs clean bench soak fuzz help
all: build tests
build: $(LIBPANEL) $(PROGRAMS)
tests: $(UNIT_BINS) $(INTEG_BINS)

$(SCHEMA_H): FORCE
	@mkdir -p $(@D)
	@echo '#define PANEL_SCHEMA_VERSION $(SCHEMA_VERSION)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
FORCE:

$(STAMP):
	@mkdir -p $(BUILD)/obj
	@printf 'typedef int panel_empty_unit;\n' > $(BUILD)/obj/empty.c && $(CC) -c -o $@ $(BUILD)/obj/empty.c

$(GEN_H): $(GEN_C)
$(GEN_C): $(PROTO)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen -Iproto $(PROTO)

$(PB_SHORT_H): $(GEN_H) scripts/pb-short-names.sh
	sh scripts/pb-short-names.sh $(GEN_H) $@

$(BUILD)/obj/gen/events.pb-c.o: $(GEN_C) | $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(filter-out -Werror,$(CFLAGS)) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(GEN_H) $(PB_SHORT_H) $(SCHEMA_H) $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBPANEL): $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/tests/unit/lib/%: tests/unit/lib/%.c $(TEST_HELPER_OBJS) $(LIBPANEL) | $(GEN_H) $(PB_SHORT_H) $(SCHEMA_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/common $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

# The directory of module M: services/M, M (emulator) or tools/M.
moddir = $(firstword $(wildcard services/$(1) $(1) tools/$(1)))
.SECONDEXPANSION:
$(BUILD)/tests/unit/%: tests/unit/%.c $(TEST_HELPER_OBJS) $(BUILD)/mod-$$(firstword $$(subst /, ,$$*)).a $(LIBPANEL) | $(GEN_H) $(PB_SHORT_H) $(SCHEMA_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/common -I$(call moddir,$(firstword $(subst /, ,$*))) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BUILD)/tests/integration/%: tests/integration/%.c $(TEST_HELPER_OBJS) $(LIBPANEL) | $(GEN_H) $(PB_SHORT_H) $(SCHEMA_H)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests/common $(CFLAGS) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

# The installer runs once per machine and work tree: the targets that start servers depend on
# a stamp written after a successful run, remade only when what the installer reads changes.
# `make deps` always runs it (say, after the cache in ~/.cache/k12panel was removed).
DEPS_STAMP := .cache/deps.stamp
DEPS_INPUTS := scripts/deps.sh scripts/common.sh deploy/kafka/pom.xml \
               examples/subscriber-java/pom.xml tests/browser/package-lock.json \
               tests/proto/package-lock.json
$(DEPS_STAMP): $(DEPS_INPUTS)
	sh scripts/deps.sh
	@mkdir -p $(@D) && touch $@

deps:
	sh scripts/deps.sh
	@mkdir -p $(dir $(DEPS_STAMP)) && touch $(DEPS_STAMP)

test: $(DEPS_STAMP)
	python3 tests/run.py

test-unit: build tests
	python3 tests/run.py --unit-only

demo: $(DEPS_STAMP)
	$(MAKE) -j2 build
	python3 scripts/demo.py

migrate: $(BUILD)/bin/panelctl
	sh scripts/infra.sh up >/dev/null && . ./.run/env && $(BUILD)/bin/panelctl migrate

infra-up:
	sh scripts/infra.sh up

infra-down:
	sh scripts/infra.sh down

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h')
format:
	clang-format -i $(FORMAT_SRCS)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

# Functions the project never uses (unbounded or not thread-safe).
lint:
	@! git grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\(' -- '*.c' '*.h' \
	  || (echo 'lint: forbidden function (use snprintf, strtol, strtok_r, buf_*)'; exit 1)

bench: $(DEPS_STAMP)
	python3 bench/run.py

soak: $(DEPS_STAMP)
	python3 tests/soak.py

fuzz: $(DEPS_STAMP)
	sh tests/fuzz/run.sh

docs: build
	python3 scripts/update-readme-config.py

clean:
	rm -rf $(BUILD)

help:
	@sed -n '2,7p' Makefile

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
