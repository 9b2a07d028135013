package org.tfedge.unpacker;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Where the flatbuffer writer puts bytes: front to back, with back-patching of offsets.
 * A counting sink only measures, so the same writing code can size the output exactly
 * before the real buffer is allocated.
 */
abstract class Sink {
    int pos;

    abstract boolean counting();

    abstract void write(byte[] src, int off, int len);

    abstract void putI32(int at, int value);

    abstract void zeros(int n);

    /** Moves past {@code n} bytes that are already in place. */
    abstract void skip(int n);

    void u16(int v) {
        byte[] b = {(byte) v, (byte) (v >>> 8)};
        write(b, 0, 2);
    }

    void i32(int v) {
        byte[] b = {(byte) v, (byte) (v >>> 8), (byte) (v >>> 16), (byte) (v >>> 24)};
        write(b, 0, 4);
    }

    /** Pads with zeros until {@code pos % align == phase}. */
    void align(int align, int phase) {
        int need = ((phase - pos) % align + align) % align;
        if (need > 0) {
            zeros(need);
        }
    }

    /**
     * Measures only. The exact size is kept in {@link #total} (a long, so any size is seen);
     * {@link #pos} follows it while it fits in an int and then stays past every limit.
     */
    static final class Counting extends Sink {
        long total;

        private void advance(long n) {
            total += n;
            pos = (int) Math.min(Integer.MAX_VALUE, total);
        }

        @Override
        boolean counting() {
            return true;
        }

        @Override
        void write(byte[] src, int off, int len) {
            advance(len);
        }

        @Override
        void putI32(int at, int value) {}

        @Override
        void zeros(int n) {
            advance(n);
        }

        @Override
        void skip(int n) {
            advance(n);
        }
    }

    static final class Buffer extends Sink {
        private static final byte[] ZEROS = new byte[64];
        final ByteBuffer out;

        Buffer(ByteBuffer out) {
            this.out = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
            this.out.clear();
        }

        @Override
        boolean counting() {
            return false;
        }

        @Override
        void write(byte[] src, int off, int len) {
            out.put(src, off, len);
            pos += len;
        }

        @Override
        void putI32(int at, int value) {
            out.putInt(at, value);
        }

        @Override
        void skip(int n) {
            out.position(out.position() + n);
            pos += n;
        }

        @Override
        void zeros(int n) {
            while (n > 0) {
                int k = Math.min(n, ZEROS.length);
                out.put(ZEROS, 0, k);
                pos += k;
                n -= k;
            }
        }
    }
}
