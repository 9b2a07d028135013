package org.tfedge.unpacker;

import java.io.ByteArrayOutputStream;
import java.util.zip.CRC32;

/**
 * A small, independent payload writer for the tests, written from docs/FORMAT.md section 2
 * (not from the Python packer): streams with fixed-width or canonical Huffman coding, and
 * whole payloads with a correct CRC.
 */
final class Payloads {
    private Payloads() {}

    /** Bits written most significant first. */
    static final class Bits {
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        int acc;
        int n;
        long written;

        void put(int value, int bits) {
            for (int i = bits - 1; i >= 0; i--) {
                acc = (acc << 1) | ((value >>> i) & 1);
                n++;
                written++;
                if (n == 8) {
                    out.write(acc);
                    acc = 0;
                    n = 0;
                }
            }
        }

        byte[] finish() {
            if (n > 0) {
                out.write(acc << (8 - n));
                acc = 0;
                n = 0;
            }
            return out.toByteArray();
        }
    }

    static void u8(ByteArrayOutputStream o, int v) {
        o.write(v);
    }

    static void u16(ByteArrayOutputStream o, int v) {
        o.write(v);
        o.write(v >>> 8);
    }

    static void u32(ByteArrayOutputStream o, long v) {
        for (int i = 0; i < 4; i++) {
            o.write((int) (v >>> (8 * i)));
        }
    }

    static byte[] fixedStream(int[] symbols, int bits) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        Bits b = new Bits();
        for (int s : symbols) {
            b.put(s, bits);
        }
        byte[] data = b.finish();
        u8(o, 0);
        u8(o, bits);
        u32(o, symbols.length);
        u32(o, data.length);
        o.write(data, 0, data.length);
        return o.toByteArray();
    }

    /** Canonical codes for the given lengths (0 = absent). */
    static int[] canonical(int[] lengths) {
        int[] codes = new int[lengths.length];
        int code = 0;
        int prev = 0;
        for (int l = 1; l <= 15; l++) {
            for (int s = 0; s < lengths.length; s++) {
                if (lengths[s] != l) {
                    continue;
                }
                if (prev != 0) {
                    code = (code + 1) << (l - prev);
                }
                prev = l;
                codes[s] = code;
            }
        }
        return codes;
    }

    /** A Huffman stream with the given code lengths (one per symbol value) and block size. */
    static byte[] huffmanStream(int[] symbols, int bits, int[] lengths, int blockSize) {
        int[] codes = canonical(lengths);
        Bits b = new Bits();
        ByteArrayOutputStream offsets = new ByteArrayOutputStream();
        for (int i = 0; i < symbols.length; i++) {
            if (i > 0 && i % blockSize == 0) {
                u32(offsets, b.written);
            }
            b.put(codes[symbols[i]], lengths[symbols[i]]);
        }
        byte[] data = b.finish();
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        u8(o, 1);
        u8(o, bits);
        u32(o, symbols.length);
        u32(o, data.length);
        u32(o, blockSize);
        int alphabet = 1 << bits;
        for (int s = 0; s < alphabet; s += 2) {
            int hi = lengths[s];
            int lo = s + 1 < alphabet ? lengths[s + 1] : 0;
            o.write((hi << 4) | lo);
        }
        byte[] off = offsets.toByteArray();
        o.write(off, 0, off.length);
        o.write(data, 0, data.length);
        return o.toByteArray();
    }

    /**
     * A whole payload: header (with CRC) and the body parts concatenated, of the lowest
     * format version that has the value kind (2 for the per-channel codebook, else 1).
     */
    static byte[] payload(int layout, int kind, int type, int es, long decoded, byte[]... body) {
        return payload(kind == 2 ? 2 : 1, layout, kind, type, es, decoded, body);
    }

    /** A whole payload of the given format version. */
    static byte[] payload(int version, int layout, int kind, int type, int es, long decoded,
            byte[]... body) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] part : body) {
            b.write(part, 0, part.length);
        }
        byte[] bodyBytes = b.toByteArray();
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.write('T');
        o.write('F');
        o.write('E');
        o.write('P');
        u8(o, version);
        u8(o, layout);
        u8(o, kind);
        u8(o, type);
        u8(o, es);
        u8(o, 0);
        u8(o, 0);
        u8(o, 0);
        u32(o, decoded);
        u32(o, decoded >>> 32);
        u32(o, bodyBytes.length);
        u32(o, 0);
        o.write(bodyBytes, 0, bodyBytes.length);
        byte[] p = o.toByteArray();
        fixCrc(p);
        return p;
    }

    /** Recomputes the CRC after a test edits a payload. */
    static void fixCrc(byte[] p) {
        CRC32 c = new CRC32();
        c.update(p, 0, 24);
        c.update(p, 28, p.length - 28);
        long v = c.getValue();
        for (int i = 0; i < 4; i++) {
            p[24 + i] = (byte) (v >>> (8 * i));
        }
    }

    static byte[] codebookPrefix(byte[] entries, int es) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        u16(o, entries.length / es);
        o.write(entries, 0, entries.length);
        return o.toByteArray();
    }

    /**
     * The per-channel codebook section of a C x K table ({@code entries}, channel by
     * channel, {@code entries.length / es / channels} is K), with its leading columns that
     * are the same in every channel stored once as shared entries (G of them), as the
     * numpy writer does.
     */
    static byte[] channelCodebookPrefix(byte[] entries, int es, long channels, long run) {
        return channelCodebookPrefix(entries, es, channels, run,
                leadingShared(entries, es, (int) channels));
    }

    /**
     * The same with G given: {@code shared} must be at most the number of leading columns
     * that are the same in every channel.
     */
    static byte[] channelCodebookPrefix(byte[] entries, int es, long channels, long run,
            int shared) {
        int c = (int) channels;
        int k = entries.length / es / Math.max(c, 1);
        if (shared > leadingShared(entries, es, c)) {
            throw new IllegalArgumentException(shared + " shared entries differ by channel");
        }
        ByteArrayOutputStream stored = new ByteArrayOutputStream();
        stored.write(entries, 0, shared * es);
        for (int ch = 0; ch < c; ch++) {
            stored.write(entries, (ch * k + shared) * es, (k - shared) * es);
        }
        return channelCodebookPrefix(k, shared, channels, run, stored.toByteArray());
    }

    /**
     * The section as given (for malformed ones): K, G, C, R and the stored entries (G
     * shared ones, then each channel's K - G own ones).
     */
    static byte[] channelCodebookPrefix(int k, int shared, long channels, long run,
            byte[] stored) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        u16(o, k);
        u16(o, shared);
        u32(o, channels);
        u32(o, run);
        o.write(stored, 0, stored.length);
        return o.toByteArray();
    }

    /** How many leading columns of a C x K table are the same in every channel. */
    static int leadingShared(byte[] entries, int es, int channels) {
        int k = entries.length / es / Math.max(channels, 1);
        for (int j = 0; j < k; j++) {
            for (int ch = 1; ch < channels; ch++) {
                for (int b = 0; b < es; b++) {
                    if (entries[(ch * k + j) * es + b] != entries[j * es + b]) {
                        return j;
                    }
                }
            }
        }
        return k;
    }

    static byte[] floats(float... v) {
        byte[] b = new byte[4 * v.length];
        for (int i = 0; i < v.length; i++) {
            int x = Float.floatToRawIntBits(v[i]);
            for (int j = 0; j < 4; j++) {
                b[4 * i + j] = (byte) (x >>> (8 * j));
            }
        }
        return b;
    }

    static int[] unsigned(byte[] b) {
        int[] s = new int[b.length];
        for (int i = 0; i < b.length; i++) {
            s[i] = b[i] & 0xff;
        }
        return s;
    }
}
