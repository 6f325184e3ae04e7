package tokenprune.io;

import java.util.Arrays;
import java.util.Objects;

/**
 * An n-dimensional array read from or written to a .npy file, in C (row-major) order.
 *
 * <p>Exactly one of {@code floats} and {@code ints} holds the data, chosen by {@code dtype}:
 * float32 and float16 files give {@code floats} (float16 widened exactly), int32 and int64 files
 * give {@code ints} (int64 narrowed, with a range check at read time). The data array is not
 * copied: the record shares it with the caller. The shape is copied.
 *
 * @param dtype the element type as stored in the file (or to be stored: see {@link Npy#write})
 * @param shape dimensions, each {@code >= 0}; empty for a 0-d (scalar) array
 * @param floats the elements for a floating dtype, else null
 * @param ints the elements for an integer dtype, else null
 */
public record NpyArray(Dtype dtype, int[] shape, float[] floats, int[] ints) {

    /** The element types the reader understands; all little-endian. */
    public enum Dtype {
        /** Little-endian IEEE binary32. */
        FLOAT32("<f4", 4, true),
        /** Little-endian IEEE binary16, widened exactly to float when read. */
        FLOAT16("<f2", 2, true),
        /** Little-endian 32-bit signed integer. */
        INT32("<i4", 4, false),
        /** Little-endian 64-bit signed integer, narrowed to int (range-checked) when read. */
        INT64("<i8", 8, false);

        private final String descr;
        private final int itemSize;
        private final boolean floating;

        Dtype(String descr, int itemSize, boolean floating) {
            this.descr = descr;
            this.itemSize = itemSize;
            this.floating = floating;
        }

        /** @return the NumPy {@code descr} string, e.g. {@code "<f4"} */
        public String descr() {
            return descr;
        }

        /** @return bytes per element in the file */
        public int itemSize() {
            return itemSize;
        }

        /** @return true if elements are held in {@link NpyArray#floats()} */
        public boolean isFloating() {
            return floating;
        }

        /**
         * @param descr a NumPy descr string
         * @return the matching dtype, or null if unsupported
         */
        public static Dtype fromDescr(String descr) {
            for (Dtype t : values()) {
                if (t.descr.equals(descr)) {
                    return t;
                }
            }
            return null;
        }
    }

    /**
     * Validates and copies the shape.
     *
     * @param dtype the element type
     * @param shape dimensions, each {@code >= 0}
     * @param floats the elements for a floating dtype, else null
     * @param ints the elements for an integer dtype, else null
     * @throws NullPointerException if dtype or shape is null
     * @throws IllegalArgumentException if a dimension is negative, if the data array does not
     *     match the dtype's kind (or both or neither are given), or if its length is not the
     *     product of the shape
     */
    public NpyArray {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(shape, "shape");
        shape = shape.clone();
        long count = elementCount(shape);
        if (dtype.isFloating() ? (floats == null || ints != null) : (ints == null || floats != null)) {
            throw new IllegalArgumentException("dtype " + dtype + " needs exactly the "
                    + (dtype.isFloating() ? "floats" : "ints") + " array to be non-null");
        }
        int length = floats != null ? floats.length : ints.length;
        if (length != count) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " holds " + count
                    + " elements but the data array has " + length);
        }
    }

    /**
     * A float32 array.
     *
     * @param data elements in C order (not copied)
     * @param shape dimensions
     * @return the array
     * @throws IllegalArgumentException as for the canonical constructor
     */
    public static NpyArray ofFloats(float[] data, int... shape) {
        return new NpyArray(Dtype.FLOAT32, shape, Objects.requireNonNull(data, "data"), null);
    }

    /**
     * An int32 array.
     *
     * @param data elements in C order (not copied)
     * @param shape dimensions
     * @return the array
     * @throws IllegalArgumentException as for the canonical constructor
     */
    public static NpyArray ofInts(int[] data, int... shape) {
        return new NpyArray(Dtype.INT32, shape, null, Objects.requireNonNull(data, "data"));
    }

    /**
     * Product of the dimensions.
     *
     * @param shape dimensions
     * @return the element count
     * @throws IllegalArgumentException if a dimension is negative or the product exceeds what a
     *     Java array can hold
     */
    public static long elementCount(int[] shape) {
        long count = 1;
        for (int d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            }
            count *= d;
            if (count > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has too many elements for a Java array");
            }
        }
        return count;
    }

    /** @return a copy of the shape */
    @Override
    public int[] shape() {
        return shape.clone();
    }

    /** @return the number of dimensions */
    public int rank() {
        return shape.length;
    }

    /**
     * @param axis 0-based axis
     * @return the size of that axis
     * @throws ArrayIndexOutOfBoundsException if axis is not in [0, rank)
     */
    public int dim(int axis) {
        return shape[axis];
    }

    /** @return the number of elements */
    public int size() {
        return floats != null ? floats.length : ints.length;
    }

    /** @return true if the data is in {@link #floats()} */
    public boolean isFloating() {
        return dtype.isFloating();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NpyArray other
                && dtype == other.dtype
                && Arrays.equals(shape, other.shape)
                && Arrays.equals(floats, other.floats)
                && Arrays.equals(ints, other.ints);
    }

    @Override
    public int hashCode() {
        return Objects.hash(dtype, Arrays.hashCode(shape), Arrays.hashCode(floats), Arrays.hashCode(ints));
    }

    @Override
    public String toString() {
        return "NpyArray[" + dtype.descr() + ", shape=" + Arrays.toString(shape) + "]";
    }
}
