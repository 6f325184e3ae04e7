package tokenprune.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fixtures under src/test/resources/npy were written once by numpy 2.4 ({@code np.save}):
 * float32_2x3 = [[1.5, -2.25, 3.0], [0.1, 1e-8, -0.0]], float16_2x2x2 = [[[1, -2], [1/3, 65504]],
 * [[2^-24, -0.0], [0.5, 1024.5]]], int32_4 = [1, -2, 2^31-1, -2^31], int64_3 = [0, -1, 2^31-1].
 */
class NpyTest {

    @TempDir
    Path dir;

    /** The fixture as a file (copied out of the classpath, which may be a jar, as in the GPU kit). */
    private Path fixture(String name) throws IOException {
        Path file = dir.resolve("fixture-" + name);
        Files.write(file, fixtureBytes(name));
        return file;
    }

    private static byte[] fixtureBytes(String name) throws IOException {
        try (InputStream in = NpyTest.class.getResourceAsStream("/npy/" + name)) {
            return in.readAllBytes();
        }
    }

    /** A .npy file with an arbitrary header dict, padded like numpy pads it. */
    private static byte[] npy(int major, String dict, byte[] data) {
        int lenBytes = major == 1 ? 2 : 4;
        int unpadded = 8 + lenBytes + dict.length() + 1;
        String header = dict + " ".repeat((64 - unpadded % 64) % 64) + "\n";
        ByteBuffer b = ByteBuffer.allocate(8 + lenBytes + header.length() + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', (byte) major, 0});
        if (major == 1) {
            b.putShort((short) header.length());
        } else {
            b.putInt(header.length());
        }
        b.put(header.getBytes(StandardCharsets.ISO_8859_1)).put(data);
        return b.array();
    }

    private static byte[] floatBytes(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putFloat(f);
        }
        return b.array();
    }

    private Path file(String name, byte[] content) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, content);
        return p;
    }

    private NpyFormatException readFails(Path p) {
        NpyFormatException e = assertThrows(NpyFormatException.class, () -> Npy.read(p));
        assertTrue(e.getMessage().startsWith(p.toString() + ": "), e.getMessage());
        assertEquals(p, e.file());
        return e;
    }

    private List<String> listDir() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().collect(Collectors.toList());
        }
    }

    // ------------------------------------------------------------------ numpy-written fixtures

    @Test
    void readsFloat32Fixture() throws IOException {
        NpyArray a = Npy.read(fixture("float32_2x3.npy"));
        assertEquals(NpyArray.Dtype.FLOAT32, a.dtype());
        assertArrayEquals(new int[] {2, 3}, a.shape());
        assertArrayEquals(new float[] {1.5f, -2.25f, 3.0f, 0.1f, 1e-8f, -0.0f}, a.floats());
        assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(a.floats()[5]));
    }

    @Test
    void readsFloat16FixtureAsExactFloats() throws IOException {
        NpyArray a = Npy.read(fixture("float16_2x2x2.npy"));
        assertEquals(NpyArray.Dtype.FLOAT16, a.dtype());
        assertArrayEquals(new int[] {2, 2, 2}, a.shape());
        assertEquals(3, a.rank());
        // 1/3 -> 0x3555, 2^-24 is the smallest subnormal, 1024.5 was rounded by numpy to 1024.
        assertArrayEquals(new float[] {1f, -2f, 0.333251953125f, 65504f, 0x1p-24f, -0.0f, 0.5f, 1024f}, a.floats());
    }

    @Test
    void readsInt32AndInt64Fixtures() throws IOException {
        NpyArray i4 = Npy.read(fixture("int32_4.npy"));
        assertEquals(NpyArray.Dtype.INT32, i4.dtype());
        assertArrayEquals(new int[] {4}, i4.shape());
        assertArrayEquals(new int[] {1, -2, Integer.MAX_VALUE, Integer.MIN_VALUE}, i4.ints());
        NpyArray i8 = Npy.read(fixture("int64_3.npy"));
        assertEquals(NpyArray.Dtype.INT64, i8.dtype());
        assertArrayEquals(new int[] {0, -1, Integer.MAX_VALUE}, i8.ints());
    }

    @Test
    void writerIsByteIdenticalToNumpy() throws IOException {
        Path i4 = dir.resolve("i4.npy");
        Npy.writeInt32(i4, new int[] {1, -2, Integer.MAX_VALUE, Integer.MIN_VALUE}, 4);
        assertArrayEquals(fixtureBytes("int32_4.npy"), Files.readAllBytes(i4));
        Path f4 = dir.resolve("f4.npy");
        Npy.writeFloat32(f4, new float[] {1.5f, -2.25f, 3.0f, 0.1f, 1e-8f, -0.0f}, 2, 3);
        assertArrayEquals(fixtureBytes("float32_2x3.npy"), Files.readAllBytes(f4));
    }

    @Test
    void headerForInt32TwoByThreeMatchesNumpyByteForByte() {
        String dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
        // numpy: 20 spaces of growth room (21 digits minus the 1 of "2"), then 38 spaces so that
        // 10 + 59 + 58 + 1 = 128 bytes, a multiple of 64, then '\n'.
        String header = dict + " ".repeat(58) + "\n";
        ByteBuffer expected = ByteBuffer.allocate(128).order(ByteOrder.LITTLE_ENDIAN);
        expected.put(new byte[] {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0}).putShort((short) 118)
                .put(header.getBytes(StandardCharsets.US_ASCII));
        assertArrayEquals(expected.array(), Npy.headerBytes(NpyArray.Dtype.INT32, new int[] {2, 3}));
    }

    @Test
    void headersAlwaysEndWithNewlineOnA64ByteBoundary() {
        for (int[] shape : new int[][] {{}, {0}, {7}, {2, 3}, {123456789, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}) {
            byte[] h = Npy.headerBytes(NpyArray.Dtype.FLOAT32, shape);
            assertEquals(0, h.length % 64);
            assertEquals('\n', h[h.length - 1]);
            assertEquals(h.length - 10, (h[8] & 0xFF) | (h[9] & 0xFF) << 8);
        }
    }

    @Test
    void anAlreadyAlignedHeaderGetsAFullBlockOfPaddingLikeNumpy() {
        // preamble 10 + dict 97 + growth 20 + '\n' 1 = 128 before padding; numpy 2.4 still adds 64
        // spaces (its padding is 1..64, never 0), so its file has 192 bytes before the data.
        int[] shape = {1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 10, 10};
        byte[] h = Npy.headerBytes(NpyArray.Dtype.FLOAT32, shape);
        assertEquals(192, h.length);
        String text = new String(h, 10, h.length - 10, StandardCharsets.US_ASCII);
        assertTrue(text.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 10, 10), }"));
        assertTrue(text.endsWith(" ".repeat(84) + "\n"), text);
    }

    // ------------------------------------------------------------------ round trips

    @Test
    void float32RoundTripsForAnyRankKeepingSpecialValuesBitExact() throws IOException {
        float nanWithPayload = Float.intBitsToFloat(0x7FC01234);
        float[] data = {0f, -0.0f, Float.MIN_VALUE, Float.MAX_VALUE, Float.NEGATIVE_INFINITY, nanWithPayload,
            1f / 3, -7.25f, 1e-30f, 42f, 0.5f, 6f};
        int[][] shapes = {{12}, {3, 4}, {2, 3, 2}, {1, 2, 1, 6}};
        for (int[] shape : shapes) {
            Path p = dir.resolve("rt" + shape.length + ".npy");
            Npy.writeFloat32(p, data, shape);
            NpyArray a = Npy.read(p);
            assertEquals(NpyArray.Dtype.FLOAT32, a.dtype());
            assertArrayEquals(shape, a.shape());
            for (int i = 0; i < data.length; i++) {
                assertEquals(Float.floatToRawIntBits(data[i]), Float.floatToRawIntBits(a.floats()[i]));
            }
        }
    }

    @Test
    void scalarAndEmptyArraysRoundTrip() throws IOException {
        Path scalar = dir.resolve("scalar.npy");
        Npy.writeInt32(scalar, new int[] {-5});
        NpyArray s = Npy.read(scalar);
        assertEquals(0, s.rank());
        assertArrayEquals(new int[] {-5}, s.ints());
        Path empty = dir.resolve("empty.npy");
        Npy.writeFloat32(empty, new float[0], 0, 5);
        NpyArray e = Npy.read(empty);
        assertArrayEquals(new int[] {0, 5}, e.shape());
        assertEquals(0, e.size());
        assertEquals(Files.size(empty), Npy.headerBytes(NpyArray.Dtype.FLOAT32, new int[] {0, 5}).length);
    }

    @Test
    void int32RoundTripAndRecordWrite() throws IOException {
        int[] data = new int[24];
        for (int i = 0; i < data.length; i++) {
            data[i] = i * i - 100;
        }
        Path p = dir.resolve("ints.npy");
        Npy.write(p, NpyArray.ofInts(data, 2, 3, 4));
        NpyArray a = Npy.read(p);
        assertEquals(NpyArray.ofInts(data, 2, 3, 4), a);
        assertEquals(-100, a.ints()[0]);
        assertEquals(429, a.ints()[23]);
    }

    @Test
    void float16InputIsWrittenBackAsFloat32() throws IOException {
        NpyArray half = Npy.read(fixture("float16_2x2x2.npy"));
        Path p = dir.resolve("widened.npy");
        Npy.write(p, half);
        NpyArray back = Npy.read(p);
        assertEquals(NpyArray.Dtype.FLOAT32, back.dtype());
        assertArrayEquals(half.floats(), back.floats());
        assertArrayEquals(half.shape(), back.shape());
    }

    @Test
    void readsVersion2Headers() throws IOException {
        Path p = file("v2.npy", npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", floatBytes(3f, -4f)));
        NpyArray a = Npy.read(p);
        assertArrayEquals(new float[] {3f, -4f}, a.floats());
        assertArrayEquals(new int[] {2}, a.shape());
    }

    @Test
    void readsHeadersWrittenInOtherValidStyles() throws IOException {
        // Keys in another order, double quotes, no trailing comma, no padding spaces inside.
        Path p = file("style.npy", npy(1, "{\"shape\":(1,2),\"fortran_order\":False,\"descr\":\"<f4\"}", floatBytes(1f, 2f)));
        assertArrayEquals(new float[] {1f, 2f}, Npy.read(p).floats());
    }

    @Test
    void overwritesAnExistingFile() throws IOException {
        Path p = file("old.npy", "not an npy file".getBytes(StandardCharsets.US_ASCII));
        Npy.writeInt32(p, new int[] {7, 8}, 2);
        assertArrayEquals(new int[] {7, 8}, Npy.read(p).ints());
        assertEquals(List.of("old.npy"), listDir());
    }

    // ------------------------------------------------------------------ bad input

    @Test
    void rejectsBadMagic() throws IOException {
        NpyFormatException e = readFails(file("text.npy", "hello, this is not numpy".getBytes(StandardCharsets.US_ASCII)));
        assertTrue(e.problem().contains("not a .npy file"), e.getMessage());
        NpyFormatException empty = readFails(file("empty.npy", new byte[0]));
        assertTrue(empty.problem().contains("bad magic"), empty.getMessage());
    }

    @Test
    void rejectsUnsupportedDtypeNamingItAndTheSupportedOnes() throws IOException {
        Path p = file("f8.npy", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", new byte[8]));
        NpyFormatException e = readFails(p);
        assertTrue(e.problem().contains("unsupported dtype '<f8'"), e.getMessage());
        assertTrue(e.problem().contains("'<f4'") && e.problem().contains("'<i8'"), e.getMessage());
        Path structured = file("rec.npy", npy(1,
                "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (1,), }", new byte[8]));
        assertTrue(readFails(structured).problem().contains("unsupported dtype"));
    }

    @Test
    void rejectsBigEndian() throws IOException {
        Path p = file("be.npy", npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", new byte[4]));
        NpyFormatException e = readFails(p);
        assertTrue(e.problem().contains("big-endian") && e.problem().contains("'>f4'"), e.getMessage());
    }

    @Test
    void rejectsFortranOrder() throws IOException {
        Path p = file("fo.npy", npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", new byte[16]));
        assertTrue(readFails(p).problem().contains("Fortran"));
    }

    @Test
    void rejectsTruncatedDataWithExpectedAndFoundSizes() throws IOException {
        Path p = file("short.npy", npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", new byte[20]));
        NpyFormatException e = readFails(p);
        assertTrue(e.problem().contains("truncated data: expected 24 bytes, found 20"), e.getMessage());
        byte[] whole = fixtureBytes("int32_4.npy");
        Path cut = file("cut.npy", java.util.Arrays.copyOf(whole, whole.length - 1));
        assertTrue(readFails(cut).problem().contains("expected 16 bytes, found 15"));
    }

    @Test
    void rejectsTrailingData() throws IOException {
        Path p = file("long.npy", npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", new byte[12]));
        assertTrue(readFails(p).problem().contains("expected 8 bytes, found 12"));
    }

    @Test
    void rejectsTruncatedHeader() throws IOException {
        byte[] whole = fixtureBytes("float32_2x3.npy");
        Path p = file("hdr.npy", java.util.Arrays.copyOf(whole, 40));
        assertTrue(readFails(p).problem().contains("truncated header"));
        Path tiny = file("tiny.npy", java.util.Arrays.copyOf(whole, 9));
        assertTrue(readFails(tiny).problem().contains("truncated header"));
    }

    @Test
    void rejectsMalformedHeaders() throws IOException {
        String[] dicts = {
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,) oops}",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1, }",
            "['descr', '<f4']",
            "",
        };
        for (int i = 0; i < dicts.length; i++) {
            Path p = file("bad" + i + ".npy", npy(1, dicts[i], new byte[4]));
            NpyFormatException e = readFails(p);
            assertTrue(e.problem().contains("malformed header"), e.getMessage());
        }
    }

    @Test
    void rejectsUnknownVersion() throws IOException {
        byte[] b = fixtureBytes("int32_4.npy");
        b[6] = 4;
        assertTrue(readFails(file("v4.npy", b)).problem().contains("version 4.0"));
    }

    @Test
    void rejectsInt64ValuesOutsideIntRange() throws IOException {
        ByteBuffer data = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1).putLong(1L << 31);
        Path p = file("big.npy", npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", data.array()));
        NpyFormatException e = readFails(p);
        assertTrue(e.problem().contains("2147483648") && e.problem().contains("flat index 1"), e.getMessage());
    }

    @Test
    void missingFileIsAnIoException() {
        assertThrows(IOException.class, () -> Npy.read(dir.resolve("absent.npy")));
    }

    // ------------------------------------------------------------------ writing failures

    @Test
    void shapeMismatchWritesNothing() throws IOException {
        Path p = dir.resolve("x.npy");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Npy.writeFloat32(p, new float[5], 2, 3));
        assertTrue(e.getMessage().contains("(2, 3)") && e.getMessage().contains("5"), e.getMessage());
        assertFalse(Files.exists(p));
        assertTrue(listDir().isEmpty());
    }

    @Test
    void failedMoveLeavesNoPartialFileOrTemporary() throws IOException {
        // The target is a non-empty directory, so the final move must fail after the data is written.
        Path target = dir.resolve("out.npy");
        Files.createDirectory(target);
        Files.write(target.resolve("keep.txt"), new byte[] {1});
        assertThrows(IOException.class, () -> Npy.writeInt32(target, new int[] {1, 2, 3}, 3));
        assertEquals(List.of("out.npy"), listDir());
        assertTrue(Files.isDirectory(target));
    }

    @Test
    void writingIntoAMissingFolderFailsCleanly() {
        Path p = dir.resolve("no-such-folder").resolve("x.npy");
        assertThrows(IOException.class, () -> Npy.writeInt32(p, new int[] {1}, 1));
        assertFalse(Files.exists(p.getParent()));
    }

    @Test
    void largeArraysSpanSeveralWriteChunks() throws IOException {
        float[] data = new float[700_000]; // 2.8 MB: more than two 1 MiB chunks
        for (int i = 0; i < data.length; i++) {
            data[i] = i * 0.5f;
        }
        Path p = dir.resolve("large.npy");
        Npy.writeFloat32(p, data, 700, 1000);
        assertEquals(128 + 4L * data.length, Files.size(p));
        assertArrayEquals(data, Npy.read(p).floats());
    }

    @Test
    void recordValidatesItsParts() {
        assertThrows(IllegalArgumentException.class, () -> NpyArray.ofFloats(new float[3], 2, 2));
        assertThrows(IllegalArgumentException.class, () -> NpyArray.ofInts(new int[0], -1));
        assertThrows(IllegalArgumentException.class,
                () -> new NpyArray(NpyArray.Dtype.FLOAT16, new int[] {1}, null, new int[1]));
        int[] shape = {2, 2};
        NpyArray a = NpyArray.ofInts(new int[4], shape);
        shape[0] = 9;
        assertArrayEquals(new int[] {2, 2}, a.shape());
        assertEquals(2, a.dim(1));
    }
}
