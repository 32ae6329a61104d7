# Fuzz targets, built with clang from the sources directly (the main build stays on gcc).
#   make -f tests/fuzz/fuzz.mk [FUZZ_BUILD=build/fuzz]      (run.sh calls it)
# Every object is instrumented for libFuzzer and built with ASan + UBSan; each target links
# lib/ plus the module sources of the service it exercises (never main.c).
CLANG ?= clang
FUZZ_BUILD ?= build/fuzz
PKGS := rdkafka libcurl libprotobuf-c libpq jansson openssl cjose
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FCFLAGS := -g -O1 -std=c11 -pthread $(SAN) -fsanitize=fuzzer-no-link \
           -D_GNU_SOURCE -Ilib -Ibuild/gen $(shell pkg-config --cflags $(PKGS)) \
           -DPANEL_VERSION='"fuzz"'
FLIBS := $(shell pkg-config --libs $(PKGS)) -lcivetweb -lpthread -lm
GEN_C := build/gen/panel/v1/events.pb-c.c

LIB_SRCS := $(wildcard lib/*.c) $(GEN_C)
obj = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))
LIB_OBJS := $(call obj,$(LIB_SRCS))
mods = $(call obj,$(filter-out services/$(1)/main.c,$(wildcard services/$(1)/*.c)))

# target -> the service whose modules (and headers) it uses
google_page_SVC := google-sync
graph_page_SVC := azure-sync
envelope_SVC := merger
consumer_SVC := merger
merge_SVC := merger
auth_callback_SVC := auth
# (events_json and jsonb_text exercise lib only; the merger is the service they serve)
events_json_SVC := merger
jsonb_text_SVC := merger
TARGETS := google_page graph_page envelope consumer merge auth_callback events_json jsonb_text
ifneq ($(wildcard services/api/*.c),)
ifneq ($(wildcard tests/fuzz/fuzz_api_request.c),)
api_request_SVC := api
TARGETS += api_request
endif
endif

all: $(TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
targets:
	@echo $(TARGETS)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CLANG) $(FCFLAGS) -w -c -o $@ $<

.SECONDEXPANSION:
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $$(call mods,$$($$*_SVC)) $(LIB_OBJS)
	$(CLANG) $(FCFLAGS) -Iservices/$($*_SVC) -Wall -Wextra -Werror -fsanitize=fuzzer -o $@ \
	  $(filter-out %.h,$^) $(FLIBS)

.SECONDARY:
.PHONY: all targets
