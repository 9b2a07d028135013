#!/usr/bin/env bash
# Offline smoke build of android_demo: a signed debug APK of the Java unpacker plus the demo
# Activity and a packed model asset, built without Gradle or Maven (none is reachable here):
#   aapt (resources, manifest) -> javac --release 8 against API-23 android.jar, with a
#   compile-only stub of the LiteRT Interpreter kept out of the APK -> dx --min-sdk-version=23
#   -> aapt add classes.dex -> zipalign -> apksigner; then `aapt dump badging` and
#   `apksigner verify` check it.
#
# What this proves: the unpacker and the Activity compile against Android API 23 in Java 8,
# dex for minSdk 23 (dx rejects lambdas and class files newer than Java 8), and package into a
# valid, signed APK with the asset stored. What it does not: the APK has no LiteRT runtime
# (the stub is compile-only), so it would not run on a device; the Gradle build
# (android_demo/README.md) is the one to install.
#
# Optional in CI: when a tool cannot be had it says so plainly and exits 0 with SKIPPED.
# Tools: javac, java, keytool (a JDK); aapt, zipalign, apksigner (Debian bookworm packages,
# installed with apt-get when run as root); android.jar and dx from Debian bullseye's
# libandroid-23-java and dalvik-exchange, fetched with `apt-get download` into a private apt
# state and unpacked with `dpkg-deb -x` (nothing is installed system-wide).
#
# Usage: scripts/android_smoke.sh [ASSET.packed]    (default: packs a small Keras model)
# Env:   ANDROID_SMOKE_OUT (default android_demo/build/smoke), PYTHON (default .venv/bin/python)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEMO="$ROOT/android_demo"
OUT="${ANDROID_SMOKE_OUT:-$DEMO/build/smoke}"
SDK="$DEMO/build/sdk"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
ASSET="${1:-}"

say() { echo "android_smoke: $*"; }
skip() { say "SKIPPED: $*"; exit 0; }
fail() { say "FAILED: $*" >&2; exit 1; }

# --- tools ---------------------------------------------------------------------------------
for tool in javac java keytool; do
    command -v "$tool" >/dev/null 2>&1 || skip "no '$tool': install a JDK (openjdk-17-jdk-headless)"
done
missing=()
for tool in aapt zipalign apksigner; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || true
fi
for tool in aapt zipalign apksigner; do
    command -v "$tool" >/dev/null 2>&1 \
        || skip "no '$tool' and it could not be installed (Debian package '$tool')"
done

ANDROID_JAR="$SDK/usr/share/java/com.android.android-23.jar"
DX_JAR="$SDK/usr/share/java/com.android.dx.jar"
if [ ! -f "$ANDROID_JAR" ] || [ ! -f "$DX_JAR" ]; then
    command -v apt-get >/dev/null 2>&1 || skip "no apt-get to fetch android.jar and dx"
    say "fetching libandroid-23-java and dalvik-exchange from Debian bullseye"
    apt_dir="$SDK/apt"
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$SDK/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian bullseye main" > "$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=/dev/null"
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
              -o "APT::Sandbox::User=root")
    apt-get "${apt_opts[@]}" update >"$apt_dir/update.log" 2>&1 \
        || skip "Debian bullseye is not reachable through apt (see $apt_dir/update.log)"
    (cd "$SDK/debs" && apt-get "${apt_opts[@]}" download libandroid-23-java dalvik-exchange \
        >"$apt_dir/download.log" 2>&1) \
        || skip "could not download libandroid-23-java and dalvik-exchange (see $apt_dir/download.log)"
    for deb in "$SDK"/debs/*.deb; do dpkg-deb -x "$deb" "$SDK"; done
    [ -f "$ANDROID_JAR" ] && [ -f "$DX_JAR" ] || skip "the bullseye packages lack android.jar or dx"
fi

# --- the asset -----------------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT/assets" "$OUT/gen" "$OUT/classes" "$OUT/stub-classes" "$OUT/dex"
if [ -n "$ASSET" ]; then
    cp "$ASSET" "$OUT/assets/model.packed"
else
    [ -x "$PY" ] || skip "no Python at $PY to pack a model (give an ASSET.packed instead)"
    say "packing a small Keras model with tfedge.compress"
    TF_CPP_MIN_LOG_LEVEL=3 "$PY" - "$OUT/assets/model.packed" <<'EOF' >"$OUT/pack.log" 2>&1 \
        || fail "packing the sample model failed (see $OUT/pack.log)"
import sys

import keras
import numpy as np
import tensorflow as tf

import tfedge

keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((64,)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.Dense(10),
])
plain = tf.lite.TFLiteConverter.from_keras_model(model).convert()
packed = tfedge.compress(plain, progress=False)
open(sys.argv[1], "wb").write(bytes(packed))
print(f"plain {len(plain)} bytes, packed {len(bytes(packed))} bytes")
EOF
fi

# --- resources, code, dex ------------------------------------------------------------------
# AGP 8 takes the package and minSdk from build.gradle; aapt needs them in the manifest.
sed -e 's|<manifest xmlns:android="http://schemas.android.com/apk/res/android">|<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="org.tfedge.demo" android:versionCode="1" android:versionName="0.1.0">\n    <uses-sdk android:minSdkVersion="23" android:targetSdkVersion="23" />|' \
    "$DEMO/app/src/main/AndroidManifest.xml" > "$OUT/AndroidManifest.xml"
grep -q 'package="org.tfedge.demo"' "$OUT/AndroidManifest.xml" || fail "manifest rewrite failed"

say "aapt: resources and R.java"
aapt package -f -m -J "$OUT/gen" -M "$OUT/AndroidManifest.xml" -S "$DEMO/app/src/main/res" \
    -I "$ANDROID_JAR"

say "javac --release 8 against android-23 (LiteRT stub on the class path only)"
javac --release 8 -Xlint:all,-options -encoding UTF-8 -d "$OUT/stub-classes" \
    $(find "$DEMO/smoke/stubs" -name '*.java')
javac --release 8 -Xlint:all,-options -encoding UTF-8 -d "$OUT/classes" \
    -cp "$ANDROID_JAR:$OUT/stub-classes" \
    $(find "$DEMO/unpacker/src/main/java" "$DEMO/app/src/main/java" "$OUT/gen" -name '*.java')
if find "$OUT/classes" -path '*org/tensorflow*' | grep -q .; then
    fail "LiteRT stub classes leaked into the app classes"
fi

say "dx --min-sdk-version=23"
java -jar "$DX_JAR" --dex --min-sdk-version=23 --output="$OUT/dex/classes.dex" "$OUT/classes"

say "aapt package, add classes.dex, zipalign, apksigner"
# -0 packed: the asset is stored, so the app can read it without inflating a copy.
aapt package -f -0 packed -M "$OUT/AndroidManifest.xml" -S "$DEMO/app/src/main/res" \
    -A "$OUT/assets" -I "$ANDROID_JAR" -F "$OUT/app-unaligned.apk"
(cd "$OUT/dex" && aapt add "$OUT/app-unaligned.apk" classes.dex >/dev/null)
zipalign -f -p 4 "$OUT/app-unaligned.apk" "$OUT/app-aligned.apk"
keytool -genkeypair -keystore "$OUT/debug.keystore" -storepass android -keypass android \
    -alias androiddebugkey -dname "CN=Android Debug,O=Android,C=US" -keyalg RSA \
    -keysize 2048 -validity 10000 >/dev/null 2>&1
apksigner sign --ks "$OUT/debug.keystore" --ks-pass pass:android --key-pass pass:android \
    --out "$OUT/app-debug.apk" "$OUT/app-aligned.apk"

# --- checks --------------------------------------------------------------------------------
say "checks"
badging="$(aapt dump badging "$OUT/app-debug.apk")"
echo "$badging" | grep -E "^(package|sdkVersion|launchable-activity)"
echo "$badging" | grep -q "^package: name='org.tfedge.demo'" || fail "wrong package"
echo "$badging" | grep -q "^sdkVersion:'23'" || fail "minSdk is not 23"
echo "$badging" | grep -q "^launchable-activity: name='org.tfedge.demo.MainActivity'" \
    || fail "no launchable MainActivity"
apksigner verify --verbose "$OUT/app-debug.apk" | grep -E "^Verified|^Verifies" \
    || fail "apksigner verify failed"
listing="$(unzip -lv "$OUT/app-debug.apk")"
echo "$listing" | grep -E "classes.dex|assets/model.packed"
echo "$listing" | grep -E "assets/model.packed" | grep -q " Stored " \
    || fail "the asset is compressed in the APK"
if grep -a -q "compile-only stub" "$OUT/dex/classes.dex"; then
    fail "the LiteRT stub is in classes.dex"
fi
zipalign -c -p 4 "$OUT/app-debug.apk" || fail "not zip-aligned"

# The asset expands with the same Java classes on the JVM, to what tfedge.expand gives.
java -cp "$OUT/classes" org.tfedge.unpacker.Main expand "$OUT/assets/model.packed" \
    "$OUT/model.expanded.tflite"
if [ -x "$PY" ]; then
    "$PY" - "$OUT/assets/model.packed" "$OUT/model.expanded.tflite" <<'EOF' \
        || fail "the Java-expanded asset differs from tfedge.expand"
import sys

import tfedge
from tfedge.codecs import decode_payload
from tfedge.tflite import read, write

packed, java = (open(p, "rb").read() for p in sys.argv[1:3])
python = tfedge.expand(packed, decoder=decode_payload)
assert write(read(java)) == write(read(python)), "models differ"
print(f"asset: {len(packed)} bytes packed, {len(java)} bytes expanded by Java "
      f"({len(python)} by tfedge.expand), same model")
EOF
fi
say "OK: $OUT/app-debug.apk ($(stat -c %s "$OUT/app-debug.apk") bytes)"
