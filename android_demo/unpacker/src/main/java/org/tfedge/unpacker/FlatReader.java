package org.tfedge.unpacker;

import java.nio.charset.Charset;

/**
 * A bounds-checked reader of FlatBuffers tables, vectors and strings in a byte array. Every
 * offset is checked against the buffer before it is followed, so a forged offset gives a
 * {@link TfedgeFormatException}, never an {@code ArrayIndexOutOfBoundsException}.
 */
final class FlatReader {
    static final Charset UTF8 = Charset.forName("UTF-8");

    final byte[] b;
    final int size;

    FlatReader(byte[] b, int size) {
        this.b = b;
        this.size = size;
    }

    /** The Python reader's message for a flatbuffer it cannot parse, with our detail. */
    TfedgeFormatException bad(String what, long at) {
        return new TfedgeFormatException("corrupted or truncated .tflite flatbuffer (" + what
                + ")");
    }

    void check(long pos, long len, String what) throws TfedgeFormatException {
        if (pos < 0 || len < 0 || pos + len > size) {
            throw bad(what + " at byte " + pos + " runs past the end of the " + size
                    + "-byte file", pos);
        }
    }

    int u8(int pos) throws TfedgeFormatException {
        check(pos, 1, "a byte");
        return b[pos] & 0xff;
    }

    int u16(int pos) throws TfedgeFormatException {
        check(pos, 2, "a 16-bit value");
        return (b[pos] & 0xff) | (b[pos + 1] & 0xff) << 8;
    }

    int i32(int pos) throws TfedgeFormatException {
        check(pos, 4, "a 32-bit value");
        return (b[pos] & 0xff) | (b[pos + 1] & 0xff) << 8 | (b[pos + 2] & 0xff) << 16
                | (b[pos + 3] & 0xff) << 24;
    }

    long u32(int pos) throws TfedgeFormatException {
        return i32(pos) & 0xffffffffL;
    }

    long i64(int pos) throws TfedgeFormatException {
        check(pos, 8, "a 64-bit value");
        return u32(pos) | ((long) i32(pos + 4) << 32);
    }

    /** The object a uoffset stored at {@code pos} points to. */
    int deref(int pos) throws TfedgeFormatException {
        long t = pos + u32(pos);
        if (t >= size) {
            throw bad("offset at byte " + pos + " points past the end of the file", pos);
        }
        return (int) t;
    }

    /** The root table's position. */
    int root() throws TfedgeFormatException {
        if (size < 8) {
            throw bad("the file is " + size + " bytes, too short for a flatbuffer", 0);
        }
        return deref(0);
    }

    /** The vtable position of the table at {@code table}, checked. */
    int vtable(int table) throws TfedgeFormatException {
        long vt = (long) table - i32(table);
        check(vt, 4, "a vtable");
        int vtSize = u16((int) vt);
        if (vtSize < 4 || (vtSize & 1) != 0) {
            throw bad("vtable size " + vtSize + " of the table at byte " + table, vt);
        }
        check(vt, vtSize, "a vtable");
        int tblSize = u16((int) vt + 2);
        if (tblSize < 4) {
            throw bad("table size " + tblSize + " of the table at byte " + table, vt);
        }
        check(table, tblSize, "a table");
        for (int i = 4; i < vtSize; i += 2) {
            int fo = u16((int) vt + i);
            if (fo != 0 && (fo < 4 || fo >= tblSize)) {
                throw bad("field " + (i - 4) / 2 + " of the table at byte " + table
                        + " lies outside the table", vt);
            }
        }
        return (int) vt;
    }

    int fieldCount(int table) throws TfedgeFormatException {
        return (u16(vtable(table)) - 4) / 2;
    }

    /** The table-relative offset of field {@code id}, or 0 when absent. */
    int fieldOffset(int table, int id) throws TfedgeFormatException {
        int vt = vtable(table);
        int vtSize = u16(vt);
        if (4 + 2 * id >= vtSize) {
            return 0;
        }
        return u16(vt + 4 + 2 * id);
    }

    /** The absolute position of field {@code id}, or 0 when absent. */
    int field(int table, int id) throws TfedgeFormatException {
        int fo = fieldOffset(table, id);
        return fo == 0 ? 0 : table + fo;
    }

    long fieldU32(int table, int id, long dflt) throws TfedgeFormatException {
        int p = field(table, id);
        return p == 0 ? dflt : u32(p);
    }

    int fieldI32(int table, int id, int dflt) throws TfedgeFormatException {
        int p = field(table, id);
        return p == 0 ? dflt : i32(p);
    }

    int fieldU8(int table, int id, int dflt) throws TfedgeFormatException {
        int p = field(table, id);
        return p == 0 ? dflt : u8(p);
    }

    long fieldI64(int table, int id, long dflt) throws TfedgeFormatException {
        int p = field(table, id);
        return p == 0 ? dflt : i64(p);
    }

    /** The sub-object (table, vector or string) field {@code id} points to, or 0. */
    int fieldRef(int table, int id) throws TfedgeFormatException {
        int p = field(table, id);
        return p == 0 ? 0 : deref(p);
    }

    /** Length of the vector at {@code vec}, checked to fit with elements of {@code es}. */
    int vectorLength(int vec, int es) throws TfedgeFormatException {
        long n = u32(vec);
        check(vec + 4L, n * es, "a vector of " + n + " elements");
        return (int) n;
    }

    String string(int s) throws TfedgeFormatException {
        int n = vectorLength(s, 1);
        return new String(b, s + 4, n, UTF8);
    }

    /** Field {@code id} as a string, or null when absent. */
    String fieldString(int table, int id) throws TfedgeFormatException {
        int s = fieldRef(table, id);
        return s == 0 ? null : string(s);
    }

    /** Element {@code i} of a vector of tables. */
    int vectorTable(int vec, int i) throws TfedgeFormatException {
        return deref(vec + 4 + 4 * i);
    }

    int vectorI32(int vec, int i) throws TfedgeFormatException {
        return i32(vec + 4 + 4 * i);
    }
}
