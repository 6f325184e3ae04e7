package tokenprune.methods;

import tokenprune.device.DeviceBuffer;

/**
 * Where {@link Dart#selectOnDevice} writes, all int32 unless noted, sequence b at the offsets given:
 * {@code keptImage} (required): R = {@link DartOptions#retained()} ints at R b, the kept image tokens
 * ascending, local to the image block; {@code keepList}: the keep list over the whole sequence at
 * {@link Dart#keepOffsets}[b]; {@code positionIds}: the same values as int64 (8 bytes each);
 * {@code recruitedBy}: R ints at R b, the recruiting pivot's position or -1; {@code pivotOrder}: P
 * ints at P b, the pivots' positions in processing order. Any but {@code keptImage} may be null.
 */
public record DartOutputs(DeviceBuffer keptImage, DeviceBuffer keepList, DeviceBuffer positionIds, DeviceBuffer recruitedBy,
                          DeviceBuffer pivotOrder) {
    public DartOutputs {
        if (keptImage == null) throw new IllegalArgumentException("keptImage: the kept image tokens output is required");
    }

    public static DartOutputs keptImage(DeviceBuffer keptImage) {
        return new DartOutputs(keptImage, null, null, null, null);
    }

    public DartOutputs withKeepList(DeviceBuffer b) {
        return new DartOutputs(keptImage, b, positionIds, recruitedBy, pivotOrder);
    }

    public DartOutputs withPositionIds(DeviceBuffer b) {
        return new DartOutputs(keptImage, keepList, b, recruitedBy, pivotOrder);
    }

    public DartOutputs withRecruitedBy(DeviceBuffer b) {
        return new DartOutputs(keptImage, keepList, positionIds, b, pivotOrder);
    }

    public DartOutputs withPivotOrder(DeviceBuffer b) {
        return new DartOutputs(keptImage, keepList, positionIds, recruitedBy, b);
    }
}
