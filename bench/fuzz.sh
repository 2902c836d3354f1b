#!/usr/bin/env bash
# Fuzzing (issue "Hardening"): each cargo-fuzz target for a few minutes, not in every CI run.
#
#   bash bench/fuzz.sh              # every target, 180 s each
#   SECS=600 bash bench/fuzz.sh x224
#
# Targets: x224 (negotiation replies), certificate (judgement of presented chains), report (the
# server's report decoder and validation), evtx (.evtx files and event XML). Seeds: the real
# inputs in fuzz/seeds/<target>/ (plus ../shared/evtx when present). A crash is saved under
# fuzz/artifacts/<target>/; copy it to fuzz/regressions/<target>/ and the regression test
# (`cargo test -p rdpfleet-agent --test fuzz_regressions`) replays it in every CI run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS="${SECS:-180}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x224 certificate report evtx)
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    if [ "$t" = evtx ] && [ -d ../../shared/evtx ]; then cp -n ../../shared/evtx/*.evtx "corpus/$t/" 2>/dev/null || true; fi
    echo "== $t: ${SECS} s"
    if cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=4096 2>"/tmp/fuzz-$t.log"; then
        grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units|cov:" "/tmp/fuzz-$t.log" | tail -1 || true
        echo "   $t: no crash"
    else
        status=1
        echo "   $t: CRASH — see /tmp/fuzz-$t.log and fuzz/artifacts/$t/"
        tail -30 "/tmp/fuzz-$t.log"
    fi
done
exit $status
