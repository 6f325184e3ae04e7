package tokenprune.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import tokenprune.numeric.Fp16;

/**
 * Reader and writer for NumPy's .npy format (format versions 1.0, 2.0 and 3.0).
 *
 * <p>Reading accepts little-endian {@code '<f4'}, {@code '<f2'}, {@code '<i4'} and {@code '<i8'}
 * in C order, any rank. float16 is widened to float exactly; int64 is narrowed to int and any
 * value outside the int range is rejected. Every problem with the file is reported as a
 * {@link NpyFormatException} whose message names the file and the problem; the data section must
 * have exactly the length the header implies (neither truncated nor followed by extra bytes).
 *
 * <p>Writing produces format 1.0 with a header byte-identical to {@code numpy.save}: keys in sorted
 * order, numpy's spare room for growing the first axis, then spaces and a final {@code '\n'} so
 * the data starts at a multiple of 64 bytes. Writes are atomic: the file is written to a temporary
 * file in the target's folder and then moved over the target, so a failed write leaves neither a
 * partial target nor the temporary file.
 */
public final class Npy {
    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    private static final int ALIGN = 64;
    // numpy pads so that the first dimension's repr can grow to this many digits in place.
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;
    private static final int WRITE_CHUNK = 1 << 20;
    private static final String SUPPORTED = "supported: '<f4' (float32), '<f2' (float16), '<i4' (int32), '<i8' (int64)";

    private Npy() {
    }

    /**
     * Reads a .npy file.
     *
     * @param file the file
     * @return the array; its dtype is the file's dtype
     * @throws NpyFormatException if the file is not a readable .npy file (see class comment)
     * @throws IOException if the file cannot be read at all
     */
    public static NpyArray read(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            ByteBuffer pre = readAt(ch, 0, (int) Math.min(size, 12));
            for (int i = 0; i < MAGIC.length; i++) {
                if (pre.limit() <= i || pre.get(i) != MAGIC[i]) {
                    throw new NpyFormatException(file, "not a .npy file (bad magic: expected \\x93NUMPY at the start)");
                }
            }
            if (pre.limit() < 8) {
                throw new NpyFormatException(file, "truncated header: file ends inside the version bytes");
            }
            int major = pre.get(6) & 0xFF;
            int minor = pre.get(7) & 0xFF;
            if (major < 1 || major > 3) {
                throw new NpyFormatException(file, "unsupported .npy format version " + major + "." + minor
                        + "; supported: 1.0, 2.0, 3.0");
            }
            int lenBytes = major == 1 ? 2 : 4;
            int headerStart = 8 + lenBytes;
            if (pre.limit() < headerStart) {
                throw new NpyFormatException(file, "truncated header: file ends inside the header length field");
            }
            long headerLen = major == 1 ? (pre.getShort(8) & 0xFFFFL) : (pre.getInt(8) & 0xFFFFFFFFL);
            if (headerStart + headerLen > size) {
                throw new NpyFormatException(file, "truncated header: header length is " + headerLen
                        + " bytes but only " + (size - headerStart) + " follow the preamble");
            }
            if (headerLen > (1 << 24)) {
                throw new NpyFormatException(file, "malformed header: implausible header length " + headerLen);
            }
            ByteBuffer hb = readAt(ch, headerStart, (int) headerLen);
            String header = new String(hb.array(), 0, hb.limit(),
                    major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
            Header h = parseHeader(file, header);

            long dataOffset = headerStart + headerLen;
            long expected = (long) h.count * h.dtype.itemSize();
            long found = size - dataOffset;
            if (found < expected) {
                throw new NpyFormatException(file, "truncated data: expected " + expected + " bytes, found " + found);
            }
            if (found > expected) {
                throw new NpyFormatException(file, "unexpected trailing data: expected " + expected
                        + " bytes, found " + found);
            }
            if (expected > Integer.MAX_VALUE) {
                throw new NpyFormatException(file, "array too large: " + expected + " bytes of data");
            }
            ByteBuffer data = readAt(ch, dataOffset, (int) expected);
            return decode(file, h, data);
        }
    }

    /**
     * Writes an array: float data as {@code '<f4'}, int data as {@code '<i4'}, whatever the
     * array's dtype says (a float16 or int64 array read from disk is written widened/narrowed).
     *
     * @param file the target; replaced if it exists
     * @param array the array
     * @throws IOException if writing fails; the target is then unchanged and no temporary file remains
     */
    public static void write(Path file, NpyArray array) throws IOException {
        Objects.requireNonNull(array, "array");
        if (array.isFloating()) {
            writeFloat32(file, array.floats(), array.shape());
        } else {
            writeInt32(file, array.ints(), array.shape());
        }
    }

    /**
     * Writes a float32 array ({@code '<f4'}); NaN payloads are written bit-exact.
     *
     * @param file the target; replaced if it exists
     * @param data elements in C order
     * @param shape dimensions; their product must equal {@code data.length}
     * @throws IllegalArgumentException if the shape does not match the data
     * @throws IOException if writing fails; the target is then unchanged and no temporary file remains
     */
    public static void writeFloat32(Path file, float[] data, int... shape) throws IOException {
        checkShape(data.length, shape);
        writeAtomically(file, NpyArray.Dtype.FLOAT32, shape, data.length, (buf, from, to) -> {
            for (int i = from; i < to; i++) {
                buf.putInt(Float.floatToRawIntBits(data[i]));
            }
        });
    }

    /**
     * Writes an int32 array ({@code '<i4'}).
     *
     * @param file the target; replaced if it exists
     * @param data elements in C order
     * @param shape dimensions; their product must equal {@code data.length}
     * @throws IllegalArgumentException if the shape does not match the data
     * @throws IOException if writing fails; the target is then unchanged and no temporary file remains
     */
    public static void writeInt32(Path file, int[] data, int... shape) throws IOException {
        checkShape(data.length, shape);
        writeAtomically(file, NpyArray.Dtype.INT32, shape, data.length, (buf, from, to) -> {
            for (int i = from; i < to; i++) {
                buf.putInt(data[i]);
            }
        });
    }

    /**
     * The complete preamble + header numpy writes for a version 1.0 file, including padding.
     *
     * @param dtype element type
     * @param shape dimensions
     * @return the bytes that precede the data; their length is a multiple of 64
     * @throws IllegalArgumentException if the header would exceed format 1.0's 65535-byte limit
     */
    public static byte[] headerBytes(NpyArray.Dtype dtype, int[] shape) {
        StringBuilder dict = new StringBuilder();
        dict.append("{'descr': '").append(dtype.descr()).append("', 'fortran_order': False, 'shape': ")
                .append(pythonTuple(shape)).append(", }");
        if (shape.length > 0) {
            dict.append(" ".repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - Integer.toString(shape[0]).length())));
        }
        int unpadded = MAGIC.length + 4 + dict.length() + 1;
        // Like numpy, an already aligned header still gets a full block of padding (1..64 spaces).
        int pad = ALIGN - unpadded % ALIGN;
        dict.append(" ".repeat(pad)).append('\n');
        byte[] text = dict.toString().getBytes(StandardCharsets.ISO_8859_1);
        if (text.length > 0xFFFF) {
            throw new IllegalArgumentException("header for shape of rank " + shape.length + " does not fit format 1.0");
        }
        ByteBuffer out = ByteBuffer.allocate(MAGIC.length + 4 + text.length).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) 1).put((byte) 0).putShort((short) text.length).put(text);
        return out.array();
    }

    // ---------------------------------------------------------------- reading helpers

    private record Header(NpyArray.Dtype dtype, int[] shape, int count) {
    }

    private static ByteBuffer readAt(FileChannel ch, long position, int length) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        long pos = position;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) {
                break; // the file shrank under us; callers check lengths against size() first
            }
            pos += n;
        }
        buf.flip();
        return buf;
    }

    private static Header parseHeader(Path file, String header) throws NpyFormatException {
        Map<String, Object> dict;
        try {
            dict = new HeaderParser(header).parseDict();
        } catch (IllegalArgumentException e) {
            throw new NpyFormatException(file, "malformed header: " + e.getMessage() + " in " + quote(header));
        }
        for (String key : List.of("descr", "fortran_order", "shape")) {
            if (!dict.containsKey(key)) {
                throw new NpyFormatException(file, "malformed header: missing key '" + key + "' in " + quote(header));
            }
        }
        if (dict.size() != 3) {
            throw new NpyFormatException(file, "malformed header: unexpected keys " + dict.keySet()
                    + "; expected exactly descr, fortran_order, shape");
        }
        Object descr = dict.get("descr");
        if (!(descr instanceof String d)) {
            throw new NpyFormatException(file, "unsupported dtype " + descr + " (structured dtype); " + SUPPORTED);
        }
        NpyArray.Dtype dtype = NpyArray.Dtype.fromDescr(d);
        if (dtype == null) {
            if (d.startsWith(">") && NpyArray.Dtype.fromDescr("<" + d.substring(1)) != null) {
                throw new NpyFormatException(file, "big-endian dtype '" + d + "' is not supported; only little-endian ('<"
                        + d.substring(1) + "'); convert with arr.astype('<" + d.substring(1) + "')");
            }
            throw new NpyFormatException(file, "unsupported dtype '" + d + "'; " + SUPPORTED);
        }
        Object fortran = dict.get("fortran_order");
        if (!(fortran instanceof Boolean f)) {
            throw new NpyFormatException(file, "malformed header: fortran_order is " + fortran + ", not True or False");
        }
        if (f) {
            throw new NpyFormatException(file, "Fortran-ordered arrays are not supported; save a C-ordered array "
                    + "(numpy.ascontiguousarray)");
        }
        Object shapeValue = dict.get("shape");
        if (!(shapeValue instanceof long[] dims)) {
            throw new NpyFormatException(file, "malformed header: shape is not a tuple of integers");
        }
        int[] shape = new int[dims.length];
        long count = 1;
        for (int i = 0; i < dims.length; i++) {
            if (dims[i] > Integer.MAX_VALUE) {
                throw new NpyFormatException(file, "array too large: dimension " + i + " is " + dims[i]);
            }
            shape[i] = (int) dims[i];
            count *= dims[i];
            if (count > Integer.MAX_VALUE - 8) {
                throw new NpyFormatException(file, "array too large: more than " + (Integer.MAX_VALUE - 8) + " elements");
            }
        }
        return new Header(dtype, shape, (int) count);
    }

    private static NpyArray decode(Path file, Header h, ByteBuffer data) throws NpyFormatException {
        int n = h.count;
        switch (h.dtype) {
            case FLOAT32: {
                float[] out = new float[n];
                data.asFloatBuffer().get(out);
                return new NpyArray(h.dtype, h.shape, out, null);
            }
            case FLOAT16: {
                short[] raw = new short[n];
                data.asShortBuffer().get(raw);
                return new NpyArray(h.dtype, h.shape, Fp16.toFloats(raw), null);
            }
            case INT32: {
                int[] out = new int[n];
                data.asIntBuffer().get(out);
                return new NpyArray(h.dtype, h.shape, null, out);
            }
            case INT64: {
                int[] out = new int[n];
                for (int i = 0; i < n; i++) {
                    long v = data.getLong(8 * i);
                    if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
                        throw new NpyFormatException(file, "int64 value " + v + " at flat index " + i
                                + " does not fit in a 32-bit int");
                    }
                    out[i] = (int) v;
                }
                return new NpyArray(h.dtype, h.shape, null, out);
            }
            default:
                throw new AssertionError(h.dtype);
        }
    }

    private static String quote(String header) {
        String s = header.strip();
        if (s.length() > 200) {
            s = s.substring(0, 200) + "...";
        }
        return "\"" + s + "\"";
    }

    /**
     * Recursive-descent parser for the Python literal subset numpy writes: a dict with string keys
     * whose values are strings, True/False, tuples of non-negative integers, or (for structured
     * dtypes, which are rejected later) a bracketed list that is skipped.
     */
    private static final class HeaderParser {
        private final String s;
        private int pos;

        HeaderParser(String s) {
            this.s = s;
        }

        Map<String, Object> parseDict() {
            Map<String, Object> map = new LinkedHashMap<>();
            expect('{');
            skipSpace();
            while (peek() != '}') {
                String key = parseString();
                expect(':');
                Object value = parseValue();
                if (map.put(key, value) != null) {
                    throw new IllegalArgumentException("duplicate key '" + key + "'");
                }
                skipSpace();
                if (peek() == ',') {
                    pos++;
                    skipSpace();
                } else if (peek() != '}') {
                    throw error("expected ',' or '}'");
                }
            }
            pos++;
            skipSpace();
            if (pos != s.length()) {
                throw error("unexpected text after the dict");
            }
            return map;
        }

        private Object parseValue() {
            skipSpace();
            char c = peek();
            if (c == '\'' || c == '"') {
                return parseString();
            }
            if (c == '(') {
                return parseTuple();
            }
            if (c == '[') {
                skipBracketed();
                return List.of();
            }
            if (s.startsWith("True", pos)) {
                pos += 4;
                return Boolean.TRUE;
            }
            if (s.startsWith("False", pos)) {
                pos += 5;
                return Boolean.FALSE;
            }
            throw error("unexpected value");
        }

        private long[] parseTuple() {
            expect('(');
            List<Long> items = new ArrayList<>();
            boolean trailingComma = false;
            skipSpace();
            while (peek() != ')') {
                items.add(parseInt());
                skipSpace();
                trailingComma = false;
                if (peek() == ',') {
                    pos++;
                    trailingComma = true;
                    skipSpace();
                } else if (peek() != ')') {
                    throw error("expected ',' or ')' in tuple");
                }
            }
            pos++;
            // In Python "(4)" is the integer 4, not a 1-tuple.
            if (items.size() == 1 && !trailingComma) {
                throw error("shape \"(" + items.get(0) + ")\" is an integer, not a tuple");
            }
            long[] out = new long[items.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = items.get(i);
            }
            return out;
        }

        private long parseInt() {
            skipSpace();
            int start = pos;
            while (pos < s.length() && Character.isDigit(s.charAt(pos)) && s.charAt(pos) < 128) {
                pos++;
            }
            if (start == pos) {
                throw error("expected a non-negative integer");
            }
            String digits = s.substring(start, pos);
            if (pos < s.length() && s.charAt(pos) == 'L') {
                pos++; // Python 2 long suffix written by old numpy versions
            }
            if (digits.length() > 18) {
                throw error("integer " + digits + " is too large");
            }
            return Long.parseLong(digits);
        }

        private String parseString() {
            skipSpace();
            char q = peek();
            if (q != '\'' && q != '"') {
                throw error("expected a quoted string");
            }
            int end = s.indexOf(q, pos + 1);
            if (end < 0) {
                throw error("unterminated string");
            }
            String value = s.substring(pos + 1, end);
            if (value.indexOf('\\') >= 0) {
                throw error("escape sequences are not supported");
            }
            pos = end + 1;
            return value;
        }

        private void skipBracketed() {
            int depth = 0;
            do {
                char c = peek();
                if (c == '[' || c == '(') {
                    depth++;
                } else if (c == ']' || c == ')') {
                    depth--;
                } else if (c == '\'' || c == '"') {
                    parseString();
                    continue;
                }
                pos++;
            } while (depth > 0);
        }

        private void expect(char c) {
            skipSpace();
            if (peek() != c) {
                throw error("expected '" + c + "'");
            }
            pos++;
        }

        private char peek() {
            if (pos >= s.length()) {
                throw error("unexpected end of header");
            }
            return s.charAt(pos);
        }

        private void skipSpace() {
            while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
                pos++;
            }
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException(what + " at character " + pos);
        }
    }

    // ---------------------------------------------------------------- writing helpers

    @FunctionalInterface
    private interface ElementWriter {
        void put(ByteBuffer buf, int from, int to);
    }

    private static void checkShape(int length, int[] shape) {
        Objects.requireNonNull(shape, "shape");
        long count = NpyArray.elementCount(shape);
        if (count != length) {
            throw new IllegalArgumentException("shape " + pythonTuple(shape) + " holds " + count
                    + " elements but the data array has " + length);
        }
    }

    private static void writeAtomically(Path file, NpyArray.Dtype dtype, int[] shape, int count,
            ElementWriter elements) throws IOException {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        Path tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
        boolean moved = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                writeFully(ch, ByteBuffer.wrap(headerBytes(dtype, shape)));
                int perChunk = WRITE_CHUNK / dtype.itemSize();
                ByteBuffer buf = ByteBuffer.allocate(WRITE_CHUNK).order(ByteOrder.LITTLE_ENDIAN);
                for (int from = 0; from < count; from += perChunk) {
                    int to = Math.min(count, from + perChunk);
                    buf.clear();
                    elements.put(buf, from, to);
                    buf.flip();
                    writeFully(ch, buf);
                }
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } finally {
            if (!moved) {
                Files.deleteIfExists(tmp);
            }
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    private static String pythonTuple(int[] shape) {
        if (shape.length == 1) {
            return "(" + shape[0] + ",)";
        }
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append(shape[i]);
        }
        return sb.append(')').toString();
    }
}
