package tokenprune.reference;

/** The DART-1 inputs (methods-vision.md §13.2), shared by the reference and kernel tests. */
public final class DartReferenceTestData {
    private DartReferenceTestData() {
    }

    /** 9 tokens: prefix 0, image 1..6, text 7, 8; one-feature keys whose |value| is the L1 norm [., 1, 2, 9, 3, 4, 5, 1, 7]. */
    public static float[][] dart1Keys() {
        return new float[][] {{0}, {1}, {-2}, {9}, {3}, {-4}, {5}, {1}, {-7}};
    }

    /** h1 = (1, 0.1), h2 = (-1, 0), h3 = (1, 0), h4 = (0, -1), h5 = (1, 1), h6 = (-1, -1), h8 = (0, 1); h0, h7 arbitrary. */
    public static float[][] dart1Hidden() {
        return new float[][] {{0.3f, 0.3f}, {1, 0.1f}, {-1, 0}, {1, 0}, {0, -1}, {1, 1}, {-1, -1}, {0.5f, -0.2f}, {0, 1}};
    }
}
