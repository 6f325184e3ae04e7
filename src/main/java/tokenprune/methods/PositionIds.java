package tokenprune.methods;

/**
 * Position ids of the tokens that survive pruning (methods-vision.md §2.2, item 4), each offset by a
 * caller-given base (e.g. where the visual tokens start in the sequence).
 */
public enum PositionIds {
    /** Survivors renumbered contiguously: base + 0 .. base + k-1 (DivPrune, FasterVLM, TransPrune). */
    RENUMBERED,
    /** Survivors keep their original positions, gaps included: base + kept index (DART, VFlowOpt). */
    ORIGINAL
}
