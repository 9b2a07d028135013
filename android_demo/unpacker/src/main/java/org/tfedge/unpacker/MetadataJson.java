package org.tfedge.unpacker;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;

/**
 * The {@code tfedge} metadata entry's {@code format_version}, read as the Python reader
 * reads it (tfedge/tflite/_packed_checks.py, docs/FORMAT.md "Hostile files"): the bytes must be UTF-8
 * JSON (RFC 8259, as Python's {@code json} module parses it), nested at most {@link
 * #MAX_DEPTH} deep, whose top level is an object with exactly one {@code format_version}
 * member, an integer &gt;= 1. The same problems give the same messages.
 */
final class MetadataJson {
    static final int MAX_DEPTH = 64;
    private static final String ENTRY = "'tfedge' metadata entry";

    private final String s;
    private int i;

    private MetadataJson(String s) {
        this.s = s;
    }

    /** The format version's decimal digits (a JSON integer >= 1, any size). */
    static String formatVersion(byte[] b, int off, int len) throws TfedgeFormatException {
        String text;
        try {
            CharBuffer cb = FlatReader.UTF8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(b, off, len));
            text = cb.toString();
        } catch (CharacterCodingException e) {
            throw new TfedgeFormatException("the " + ENTRY + " is not UTF-8 text");
        }
        if (depth(text) > MAX_DEPTH) {
            throw new TfedgeFormatException("the " + ENTRY + " nests JSON deeper than "
                    + MAX_DEPTH + " levels");
        }
        MetadataJson p = new MetadataJson(text);
        java.util.List<String> versions = new java.util.ArrayList<String>();
        boolean object;
        try {
            p.ws();
            object = p.peek() == '{';
            p.value(object ? versions : null);
            p.ws();
            if (p.i != text.length()) {
                throw new IllegalArgumentException("extra data");
            }
        } catch (IllegalArgumentException e) {
            throw new TfedgeFormatException("the " + ENTRY + " is not valid JSON");
        }
        if (!object) {
            throw new TfedgeFormatException("the " + ENTRY + " is not a JSON object");
        }
        if (versions.size() != 1) {
            throw new TfedgeFormatException("the " + ENTRY + " has " + versions.size()
                    + " format_version members, expected 1");
        }
        String v = versions.get(0);
        boolean integer = v != null && v.indexOf('.') < 0 && v.indexOf('e') < 0
                && v.indexOf('E') < 0 && !v.startsWith("-") && !v.equals("0");
        if (!integer) {
            throw new TfedgeFormatException("the " + ENTRY
                    + "'s format_version is not an integer >= 1");
        }
        return v;
    }

    /** The deepest nesting of [ and { outside strings (an open string runs to the end). */
    static int depth(String t) {
        int d = 0;
        int max = 0;
        int n = t.length();
        for (int k = 0; k < n; k++) {
            char c = t.charAt(k);
            if (c == '"') {
                k++;
                while (k < n && t.charAt(k) != '"') {
                    if (t.charAt(k) == '\\') {
                        if (k + 1 >= n) {
                            break; // a lone trailing backslash stays outside the string
                        }
                        k++;
                    }
                    k++;
                }
            } else if (c == '[' || c == '{') {
                max = Math.max(max, ++d);
            } else if (c == ']' || c == '}') {
                d--;
            }
        }
        return max;
    }

    private int peek() {
        return i < s.length() ? s.charAt(i) : -1;
    }

    private void ws() {
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            i++;
        }
    }

    private static IllegalArgumentException bad() {
        return new IllegalArgumentException();
    }

    private void expect(char c) {
        if (peek() != c) {
            throw bad();
        }
        i++;
    }

    /**
     * Parses one value. For the top-level object ({@code versions} not null), the text of
     * each format_version member's value (null when it is not a number) is collected.
     */
    private void value(java.util.List<String> versions) {
        int c = peek();
        if (c == '{') {
            i++;
            ws();
            if (peek() == '}') {
                i++;
                return;
            }
            while (true) {
                ws();
                String key = string();
                ws();
                expect(':');
                ws();
                int start = i;
                int first = peek();
                value(null);
                if (versions != null && "format_version".equals(key)) {
                    boolean number = first == '-' || (first >= '0' && first <= '9');
                    versions.add(number ? s.substring(start, i) : null);
                }
                ws();
                if (peek() == ',') {
                    i++;
                    continue;
                }
                expect('}');
                return;
            }
        } else if (c == '[') {
            i++;
            ws();
            if (peek() == ']') {
                i++;
                return;
            }
            while (true) {
                ws();
                value(null);
                ws();
                if (peek() == ',') {
                    i++;
                    continue;
                }
                expect(']');
                return;
            }
        } else if (c == '"') {
            string();
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            number();
        } else if (s.startsWith("true", i)) {
            i += 4;
        } else if (s.startsWith("false", i)) {
            i += 5;
        } else if (s.startsWith("null", i)) {
            i += 4;
        } else {
            throw bad(); // includes NaN and Infinity, which are not JSON
        }
    }

    private String string() {
        expect('"');
        StringBuilder sb = new StringBuilder();
        while (true) {
            if (i >= s.length()) {
                throw bad();
            }
            char c = s.charAt(i++);
            if (c == '"') {
                return sb.toString();
            }
            if (c < 0x20) {
                throw bad();
            }
            if (c != '\\') {
                sb.append(c);
                continue;
            }
            if (i >= s.length()) {
                throw bad();
            }
            char e = s.charAt(i++);
            switch (e) {
                case '"': case '\\': case '/':
                    sb.append(e);
                    break;
                case 'b': sb.append('\b'); break;
                case 'f': sb.append('\f'); break;
                case 'n': sb.append('\n'); break;
                case 'r': sb.append('\r'); break;
                case 't': sb.append('\t'); break;
                case 'u':
                    if (i + 4 > s.length()) {
                        throw bad();
                    }
                    int v = 0;
                    for (int k = 0; k < 4; k++) {
                        int h = Character.digit(s.charAt(i + k), 16);
                        if (h < 0 || s.charAt(i + k) > 'f') {
                            throw bad();
                        }
                        v = v * 16 + h;
                    }
                    i += 4;
                    sb.append((char) v);
                    break;
                default:
                    throw bad();
            }
        }
    }

    private static boolean digit(int c) {
        return c >= '0' && c <= '9';
    }

    private void number() {
        if (peek() == '-') {
            i++;
        }
        if (peek() == '0') {
            i++;
        } else if (digit(peek())) {
            while (digit(peek())) {
                i++;
            }
        } else {
            throw bad();
        }
        if (peek() == '.' && i + 1 < s.length() && digit(s.charAt(i + 1))) {
            i++;
            while (digit(peek())) {
                i++;
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            int save = i;
            i++;
            if (peek() == '+' || peek() == '-') {
                i++;
            }
            if (!digit(peek())) {
                i = save; // not an exponent: what follows is checked by the caller
                return;
            }
            while (digit(peek())) {
                i++;
            }
        }
    }
}
