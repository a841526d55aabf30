#!/usr/bin/env bash
# Re-render docs/digest.png (README's picture of a digest) after changing the templates:
# the quick start in a scratch folder, then alice's email HTML part screenshotted by headless
# Chromium (apt-get install chromium fonts-noto-color-emoji).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$repo/digestbot.toml" "$repo/subscriptions" "$repo/examples" "$work/"
cd "$work"
digestbot -q run --once
python3 - <<'PY'
import email, glob
from email import policy
with open(sorted(glob.glob("outbox/alice/*.eml"))[-1], "rb") as f:
    msg = email.message_from_binary_file(f, policy=policy.default)
open("alice.html", "w", encoding="utf-8").write(msg.get_body(("html",)).get_content())
PY
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=700,1030 \
  --screenshot="$repo/docs/digest.png" "file://$work/alice.html" 2>/dev/null
echo "wrote $repo/docs/digest.png"
