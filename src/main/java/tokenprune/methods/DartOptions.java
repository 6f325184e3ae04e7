package tokenprune.methods;

/**
 * DART's parameters (methods-vision.md §4.2): {@code pivotImage} (P_img) image pivots and
 * {@code pivotText} (P_txt) text pivots chosen by key L1 norm, each pivot recruiting
 * {@code tokenTopK} image tokens, processed in {@code pivotOrder}. Each sequence keeps
 * {@link #retained()} = P_img + (P_img + P_txt) * TOKEN_TOPK image tokens.
 *
 * <p>The static {@code tokenTopK*} functions are the official quota rules, with Python's
 * arithmetic: {@link #llava15()} gives 128 // 8 = 16 (132 kept of 576), {@link #llavaNext(int)}
 * min(320, L - 4) // 8, {@link #qwen(int, double)} int(L * (1 - ratio) / 8).
 */
public record DartOptions(int pivotImage, int pivotText, int tokenTopK, PivotOrder pivotOrder) {
    /** The order in which pivots recruit (each pivot's recruits leave the pool, so it matters, DART-1). */
    public enum PivotOrder {
        /** Ascending pivot position (default, [decision]). */
        SORTED,
        /** The official code's: iteration order of a CPython set of the pivots (§4.4), emulated on the device. */
        OFFICIAL_COMPAT
    }

    /** Most pivots per sequence (image + text) the kernels support. */
    public static final int MAX_PIVOTS = 32;
    /** Official defaults: pivot_image_token, pivot_text_token, max_num_trunction, retain_token_num_for_llava_next. */
    public static final int DEFAULT_PIVOT_IMAGE = 4, DEFAULT_PIVOT_TEXT = 4, LLAVA15_MAX_NUM_TRUNCATION = 128, LLAVA_NEXT_RETAIN = 320;

    public DartOptions {
        if (pivotImage < 1) throw new IllegalArgumentException("pivotImage: must be >= 1, got " + pivotImage);
        if (pivotText < 0) throw new IllegalArgumentException("pivotText: must be >= 0, got " + pivotText);
        if (pivotImage + pivotText > MAX_PIVOTS) {
            throw new IllegalArgumentException("pivotImage + pivotText: at most " + MAX_PIVOTS + " pivots, got " + (pivotImage + pivotText));
        }
        if (tokenTopK < 0) throw new IllegalArgumentException("tokenTopK: must be >= 0, got " + tokenTopK);
        if (pivotOrder == null) throw new IllegalArgumentException("pivotOrder: must not be null");
        if ((long) pivotImage + (long) (pivotImage + pivotText) * tokenTopK > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("tokenTopK: " + tokenTopK + " recruits per pivot overflow the kept count");
        }
    }

    /** P_img image pivots, P_txt text pivots, TOKEN_TOPK recruits each, sorted pivot order. */
    public static DartOptions of(int pivotImage, int pivotText, int tokenTopK) {
        return new DartOptions(pivotImage, pivotText, tokenTopK, PivotOrder.SORTED);
    }

    /** LLaVA-1.5 defaults: 4 + 4 pivots, TOKEN_TOPK = 128 // 8 = 16, 132 image tokens kept. */
    public static DartOptions llava15() {
        return of(DEFAULT_PIVOT_IMAGE, DEFAULT_PIVOT_TEXT, tokenTopKFromBudget(LLAVA15_MAX_NUM_TRUNCATION, DEFAULT_PIVOT_IMAGE, DEFAULT_PIVOT_TEXT));
    }

    /** LLaVA-1.6 / NeXT defaults for an image block of {@code imageLength} tokens: TOKEN_TOPK = min(320, L - 4) // 8. */
    public static DartOptions llavaNext(int imageLength) {
        return of(DEFAULT_PIVOT_IMAGE, DEFAULT_PIVOT_TEXT, tokenTopKLlavaNext(imageLength));
    }

    /** The Qwen2-VL / Qwen2.5-VL port: TOKEN_TOPK = int(L * (1 - ratio) / 8). */
    public static DartOptions qwen(int imageLength, double reductionRatio) {
        return of(DEFAULT_PIVOT_IMAGE, DEFAULT_PIVOT_TEXT, tokenTopKQwen(imageLength, reductionRatio, DEFAULT_PIVOT_IMAGE, DEFAULT_PIVOT_TEXT));
    }

    public DartOptions withPivotOrder(PivotOrder order) {
        return new DartOptions(pivotImage, pivotText, tokenTopK, order);
    }

    /** true: {@link PivotOrder#OFFICIAL_COMPAT}; false: {@link PivotOrder#SORTED}. */
    public DartOptions officialCompat(boolean on) {
        return withPivotOrder(on ? PivotOrder.OFFICIAL_COMPAT : PivotOrder.SORTED);
    }

    /** P = P_img + P_txt. */
    public int pivots() {
        return pivotImage + pivotText;
    }

    /** Image tokens kept per sequence: P_img + (P_img + P_txt) * TOKEN_TOPK. */
    public int retained() {
        return retainedVisualTokens(pivotImage, pivotText, tokenTopK);
    }

    // ---- the official quota rules ---------------------------------------------------------------

    /** P_img + (P_img + P_txt) * TOKEN_TOPK (text pivots leave again, their recruits stay). */
    public static int retainedVisualTokens(int pivotImage, int pivotText, int tokenTopK) {
        return Math.toIntExact(pivotImage + (long) (pivotImage + pivotText) * tokenTopK);
    }

    /**
     * LLaVA-1.5 with {@code max_num_trunction}: ceil(max_num_trunction // (P_img + P_txt)), which is
     * the floor division (ceil of an int is a no-op). 128, 4, 4 → 16.
     */
    public static int tokenTopKFromBudget(int maxNumTruncation, int pivotImage, int pivotText) {
        checkPivots(pivotImage, pivotText);
        if (maxNumTruncation < 0) throw new IllegalArgumentException("maxNumTruncation: must be >= 0, got " + maxNumTruncation);
        return Math.floorDiv(maxNumTruncation, pivotImage + pivotText);
    }

    /**
     * LLaVA-1.5 without {@code max_num_trunction}: L * (1 - ratio) // (P_img + P_txt) with Python's
     * float floor division, as an int. 576, 0.778, 4, 4 → 15.
     */
    public static int tokenTopKFromRatio(int imageLength, double reductionRatio, int pivotImage, int pivotText) {
        checkPivots(pivotImage, pivotText);
        checkImageLength(imageLength);
        checkRatio(reductionRatio);
        return (int) pythonFloorDiv(imageLength * (1 - reductionRatio), pivotImage + pivotText);
    }

    /** LLaVA-1.6 / NeXT defaults: int(min(320, L - 4) // 8). 2340 → 40. */
    public static int tokenTopKLlavaNext(int imageLength) {
        return tokenTopKLlavaNext(imageLength, LLAVA_NEXT_RETAIN, DEFAULT_PIVOT_IMAGE, DEFAULT_PIVOT_TEXT);
    }

    /**
     * LLaVA-1.6 / NeXT: min(retain, L - P_img) // (P_img + P_txt) (the spec gives the rule with the
     * defaults substituted, min(320, L - 4) // 8; we read the 4 as P_img and the 8 as P_img + P_txt).
     *
     * @throws IllegalArgumentException if the result would be negative (L &lt; P_img; the official topk raises)
     */
    public static int tokenTopKLlavaNext(int imageLength, int retain, int pivotImage, int pivotText) {
        checkPivots(pivotImage, pivotText);
        checkImageLength(imageLength);
        if (retain < 0) throw new IllegalArgumentException("retain: must be >= 0, got " + retain);
        int k = Math.floorDiv(Math.min(retain, imageLength - pivotImage), pivotImage + pivotText);
        if (k < 0) {
            throw new IllegalArgumentException("imageLength: " + imageLength + " image tokens are fewer than the " + pivotImage
                    + " image pivots (TOKEN_TOPK would be " + k + ")");
        }
        return k;
    }

    /** The Qwen2-VL / Qwen2.5-VL port: int(L * (1 - ratio) / (P_img + P_txt)), truncated. 1000, 0.778 → 27. */
    public static int tokenTopKQwen(int imageLength, double reductionRatio, int pivotImage, int pivotText) {
        checkPivots(pivotImage, pivotText);
        checkImageLength(imageLength);
        checkRatio(reductionRatio);
        return (int) (imageLength * (1 - reductionRatio) / (pivotImage + pivotText));
    }

    /** Python's float floor division a // b for finite a and b != 0 (CPython's float_floor_div). */
    static double pythonFloorDiv(double a, double b) {
        double mod = a % b;  // fmod: exact
        double div = (a - mod) / b;
        if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
        if (div == 0) return Math.copySign(0.0, a / b);
        double floor = Math.floor(div);
        if (div - floor > 0.5) floor += 1.0;
        return floor;
    }

    private static void checkPivots(int pivotImage, int pivotText) {
        if (pivotImage < 1) throw new IllegalArgumentException("pivotImage: must be >= 1, got " + pivotImage);
        if (pivotText < 0) throw new IllegalArgumentException("pivotText: must be >= 0, got " + pivotText);
    }

    private static void checkImageLength(int imageLength) {
        if (imageLength < 1) throw new IllegalArgumentException("imageLength: must be >= 1, got " + imageLength);
    }

    private static void checkRatio(double ratio) {
        if (!(ratio >= 0 && ratio < 1)) throw new IllegalArgumentException("reductionRatio: must be in [0, 1), got " + ratio);
    }
}
