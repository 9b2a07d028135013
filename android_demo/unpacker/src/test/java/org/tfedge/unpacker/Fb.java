package org.tfedge.unpacker;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * A tiny tree-to-flatbuffer serialiser for the tests: build tables, vectors and strings as
 * objects, then {@link #finish} writes them front to back (parents before children, so every
 * offset points forward). Independent of the unpacker's writer on purpose.
 */
final class Fb {
    private Fb() {}

    interface Node {}

    /** A table: scalars by field id (little-endian bytes), children by field id. */
    static final class Table implements Node {
        final List<Object[]> fields = new ArrayList<Object[]>(); // {id, byte[] or Node}

        Table u8(int id, int v) {
            fields.add(new Object[] {id, new byte[] {(byte) v}});
            return this;
        }

        Table i32(int id, int v) {
            fields.add(new Object[] {id, le(v, 4)});
            return this;
        }

        Table child(int id, Node n) {
            fields.add(new Object[] {id, n});
            return this;
        }
    }

    static final class Str implements Node {
        final byte[] utf8;

        Str(String s) {
            utf8 = s.getBytes(FlatReader.UTF8);
        }
    }

    /** A vector of scalars given as raw little-endian bytes with an element size. */
    static final class Bytes implements Node {
        final byte[] data;
        final int es;

        Bytes(byte[] data, int es) {
            this.data = data;
            this.es = es;
        }
    }

    static final class Tables implements Node {
        final Node[] items;

        Tables(Node... items) {
            this.items = items;
        }
    }

    static Table table() {
        return new Table();
    }

    static Str str(String s) {
        return new Str(s);
    }

    static Bytes ints(int... v) {
        byte[] b = new byte[4 * v.length];
        for (int i = 0; i < v.length; i++) {
            System.arraycopy(le(v[i], 4), 0, b, 4 * i, 4);
        }
        return new Bytes(b, 4);
    }

    static Bytes bytes(byte[] b) {
        return new Bytes(b, 1);
    }

    static Tables tables(Node... items) {
        return new Tables(items);
    }

    static byte[] le(long v, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (v >>> (8 * i));
        }
        return b;
    }

    /** Serialises {@code root} with file identifier {@code ident}. */
    static byte[] finish(Table root, String ident) {
        Out o = new Out();
        o.raw(new byte[4]);
        o.raw(ident.getBytes(FlatReader.UTF8));
        int at = o.table(root);
        o.patch(0, at);
        return o.bytes();
    }

    private static final class Out {
        byte[] buf = new byte[256];
        int pos;

        void ensure(int n) {
            if (pos + n > buf.length) {
                byte[] b = new byte[Math.max(buf.length * 2, pos + n)];
                System.arraycopy(buf, 0, b, 0, pos);
                buf = b;
            }
        }

        void raw(byte[] b) {
            ensure(b.length);
            System.arraycopy(b, 0, buf, pos, b.length);
            pos += b.length;
        }

        void align(int a, int phase) {
            while (pos % a != phase) {
                raw(new byte[1]);
            }
        }

        void patch(int at, int v) {
            System.arraycopy(le(v, 4), 0, buf, at, 4);
        }

        byte[] bytes() {
            byte[] b = new byte[pos];
            System.arraycopy(buf, 0, b, 0, pos);
            return b;
        }

        int node(Node n) {
            if (n instanceof Table) {
                return table((Table) n);
            }
            if (n instanceof Str) {
                byte[] s = ((Str) n).utf8;
                align(4, 0);
                int at = pos;
                raw(le(s.length, 4));
                raw(s);
                raw(new byte[1]);
                return at;
            }
            if (n instanceof Bytes) {
                Bytes b = (Bytes) n;
                int a = Math.max(4, b.es);
                align(a, a - 4);
                int at = pos;
                raw(le(b.data.length / b.es, 4));
                raw(b.data);
                return at;
            }
            Tables t = (Tables) n;
            align(4, 0);
            int at = pos;
            raw(le(t.items.length, 4));
            int slots = pos;
            raw(new byte[4 * t.items.length]);
            for (int i = 0; i < t.items.length; i++) {
                int c = node(t.items[i]);
                patch(slots + 4 * i, c - (slots + 4 * i));
            }
            return at;
        }

        int table(Table t) {
            int maxId = -1;
            for (Object[] f : t.fields) {
                maxId = Math.max(maxId, (Integer) f[0]);
            }
            // Layout: soffset, then each field 4-byte aligned in order of declaration.
            int[] offs = new int[maxId + 1];
            int size = 4;
            for (Object[] f : t.fields) {
                int len = f[1] instanceof byte[] ? ((byte[]) f[1]).length : 4;
                size = (size + 3) / 4 * 4;
                offs[(Integer) f[0]] = size;
                size += len;
            }
            size = (size + 3) / 4 * 4;
            align(2, 0);
            int vt = pos;
            raw(le(4 + 2 * (maxId + 1), 2));
            raw(le(size, 2));
            for (int o : offs) {
                raw(le(o, 2));
            }
            align(4, 0);
            int at = pos;
            raw(new byte[size]);
            patch(at, at - vt);
            for (Object[] f : t.fields) {
                if (f[1] instanceof byte[]) {
                    byte[] v = (byte[]) f[1];
                    System.arraycopy(v, 0, buf, at + offs[(Integer) f[0]], v.length);
                }
            }
            for (Object[] f : t.fields) {
                if (f[1] instanceof Node) {
                    int field = at + offs[(Integer) f[0]];
                    int c = node((Node) f[1]);
                    patch(field, c - field);
                }
            }
            return at;
        }
    }
}
