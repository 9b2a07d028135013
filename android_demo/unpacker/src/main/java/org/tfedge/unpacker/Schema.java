package org.tfedge.unpacker;

/**
 * The parts of the TFLite flatbuffer schema (tensorflow/compiler/mlir/lite/schema/schema.fbs,
 * as shipped with LiteRT 2.x) that a deep copy needs: for each table, which fields hold
 * offsets (strings, vectors, sub-tables, unions) and what they point to. Scalar fields need no
 * description: a table's inline bytes are copied as they are.
 *
 * <p>The fixed tables list their number of fields; a table with a field beyond that is from a
 * newer schema and is refused rather than copied wrongly. Operator option tables that hold
 * only scalars share one description; the union members that hold vectors or strings are
 * listed one by one. A union type newer than the known ones is refused.
 */
final class Schema {
    private Schema() {}

    // Field kinds.
    static final int STRING = 1;
    static final int VECTOR = 2; // vector of scalars; arg = element size
    static final int TABLE_VECTOR = 3; // arg = table type
    static final int TABLE = 4; // arg = table type
    static final int UNION = 5; // arg = union id; arg2 = the id of its _type field

    // Table types.
    static final int MODEL = 0;
    static final int SUBGRAPH = 1;
    static final int TENSOR = 2;
    static final int OPERATOR = 3;
    static final int OPERATOR_CODE = 4;
    static final int BUFFER = 5;
    static final int METADATA = 6;
    static final int SIGNATURE_DEF = 7;
    static final int TENSOR_MAP = 8;
    static final int QUANTIZATION = 9;
    static final int CUSTOM_QUANTIZATION = 10;
    static final int BLOCKWISE_QUANTIZATION = 11;
    static final int MULTI_AXIS_QUANTIZATION = 12;
    static final int SPARSITY = 13;
    static final int DIMENSION_METADATA = 14;
    static final int INT32_VECTOR = 15;
    static final int UINT16_VECTOR = 16;
    static final int UINT8_VECTOR = 17;
    static final int VARIANT_SUB_TYPE = 18;
    static final int EXTERNAL_BUFFER_GROUP = 19;
    static final int EXTERNAL_BUFFER = 20;
    static final int SCALAR_OPTIONS = 21;
    // Operator options with offset fields.
    static final int OPT_CONCAT_EMBEDDINGS = 22;
    static final int OPT_FULLY_CONNECTED = 23;
    static final int OPT_RESHAPE = 24;
    static final int OPT_SQUEEZE = 25;
    static final int OPT_VAR_HANDLE = 26;
    static final int OPT_BUCKETIZE = 27;
    static final int OPT_HLO_BROADCAST_IN_DIM = 28;
    static final int OPT_HLO_SLICE = 29;
    static final int OPT_HLO_CONVOLUTION = 30;
    static final int OPT_HLO_CUSTOM_CALL = 31;
    static final int OPT_HLO_REDUCE = 32;
    static final int OPT_HLO_SCATTER = 33;
    static final int OPT_HLO_DYNAMIC_SLICE = 34;
    static final int OPT_HLO_PAD = 35;
    static final int OPT_HLO_DOT_GENERAL = 36;
    static final int OPT_HLO_REDUCE_WINDOW = 37;
    static final int OPT_HLO_GATHER = 38;
    static final int OPT_HLO_TRANSPOSE = 39;
    static final int OPT_HLO_COMPOSITE = 40;
    static final int OPT_HLO_CASE = 41;
    static final int TABLE_TYPES = 42;

    // Unions.
    static final int U_BUILTIN_OPTIONS = 0;
    static final int U_BUILTIN_OPTIONS_2 = 1;
    static final int U_QUANTIZATION_DETAILS = 2;
    static final int U_SPARSE_INDEX_VECTOR = 3;

    static final String[] NAMES = new String[TABLE_TYPES];
    /** Number of fields of each fixed table; -1 for option tables (extra fields are scalars). */
    static final int[] FIELD_COUNT = new int[TABLE_TYPES];
    /** For each table type, rows of {field id, kind, arg, arg2}. */
    static final int[][][] FIELDS = new int[TABLE_TYPES][][];

    private static void table(int type, String name, int fieldCount, int[]... fields) {
        NAMES[type] = name;
        FIELD_COUNT[type] = fieldCount;
        FIELDS[type] = fields;
    }

    private static int[] f(int id, int kind, int arg) {
        return new int[] {id, kind, arg, 0};
    }

    private static int[] u(int id, int union, int typeField) {
        return new int[] {id, UNION, union, typeField};
    }

    private static int[] vec(int id, int es) {
        return f(id, VECTOR, es);
    }

    private static int[] str(int id) {
        return f(id, STRING, 0);
    }

    static {
        table(MODEL, "Model", 10, f(1, TABLE_VECTOR, OPERATOR_CODE), f(2, TABLE_VECTOR, SUBGRAPH),
                str(3), f(4, TABLE_VECTOR, BUFFER), vec(5, 4), f(6, TABLE_VECTOR, METADATA),
                f(7, TABLE_VECTOR, SIGNATURE_DEF), f(8, TABLE_VECTOR, EXTERNAL_BUFFER_GROUP),
                f(9, TABLE_VECTOR, EXTERNAL_BUFFER));
        table(SUBGRAPH, "SubGraph", 6, f(0, TABLE_VECTOR, TENSOR), vec(1, 4), vec(2, 4),
                f(3, TABLE_VECTOR, OPERATOR), str(4));
        table(TENSOR, "Tensor", 11, vec(0, 4), str(3), f(4, TABLE, QUANTIZATION),
                f(6, TABLE, SPARSITY), vec(7, 4), f(9, TABLE_VECTOR, VARIANT_SUB_TYPE));
        table(OPERATOR, "Operator", 14, vec(1, 4), vec(2, 4), u(4, U_BUILTIN_OPTIONS, 3),
                vec(5, 1), vec(7, 1), vec(8, 4), u(12, U_BUILTIN_OPTIONS_2, 11));
        table(OPERATOR_CODE, "OperatorCode", 4, str(1));
        table(BUFFER, "Buffer", 3, vec(0, 1));
        table(METADATA, "Metadata", 2, str(0));
        // Field 3 is the deprecated string deprecated_tag (was method_name): old files may
        // still hold it, so it is copied as a string, not as an inline scalar.
        table(SIGNATURE_DEF, "SignatureDef", 5, f(0, TABLE_VECTOR, TENSOR_MAP),
                f(1, TABLE_VECTOR, TENSOR_MAP), str(2), str(3));
        table(TENSOR_MAP, "TensorMap", 2, str(0));
        table(QUANTIZATION, "QuantizationParameters", 7, vec(0, 4), vec(1, 4), vec(2, 4),
                vec(3, 8), u(5, U_QUANTIZATION_DETAILS, 4));
        table(CUSTOM_QUANTIZATION, "CustomQuantization", 1, vec(0, 1));
        table(BLOCKWISE_QUANTIZATION, "BlockwiseQuantization", 4, vec(3, 4));
        table(MULTI_AXIS_QUANTIZATION, "MultiAxisQuantization", 4, vec(3, 4));
        table(SPARSITY, "SparsityParameters", 3, vec(0, 4), vec(1, 4),
                f(2, TABLE_VECTOR, DIMENSION_METADATA));
        table(DIMENSION_METADATA, "DimensionMetadata", 6, u(3, U_SPARSE_INDEX_VECTOR, 2),
                u(5, U_SPARSE_INDEX_VECTOR, 4));
        table(INT32_VECTOR, "Int32Vector", 1, vec(0, 4));
        table(UINT16_VECTOR, "Uint16Vector", 1, vec(0, 2));
        table(UINT8_VECTOR, "Uint8Vector", 1, vec(0, 1));
        table(VARIANT_SUB_TYPE, "VariantSubType", 3, vec(0, 4));
        table(EXTERNAL_BUFFER_GROUP, "ExternalBufferGroup", 1, str(0));
        table(EXTERNAL_BUFFER, "ExternalBuffer", 5, str(4));
        table(SCALAR_OPTIONS, "operator options", -1);
        table(OPT_CONCAT_EMBEDDINGS, "ConcatEmbeddingsOptions", -1, vec(1, 4), vec(2, 4));
        table(OPT_FULLY_CONNECTED, "FullyConnectedOptions", -1, vec(5, 1));
        table(OPT_RESHAPE, "ReshapeOptions", -1, vec(0, 4));
        table(OPT_SQUEEZE, "SqueezeOptions", -1, vec(0, 4));
        table(OPT_VAR_HANDLE, "VarHandleOptions", -1, str(0), str(1));
        table(OPT_BUCKETIZE, "BucketizeOptions", -1, vec(0, 4));
        table(OPT_HLO_BROADCAST_IN_DIM, "StablehloBroadcastInDimOptions", -1, vec(0, 8));
        table(OPT_HLO_SLICE, "StablehloSliceOptions", -1, vec(0, 8), vec(1, 8), vec(2, 8));
        table(OPT_HLO_CONVOLUTION, "StablehloConvolutionOptions", -1, vec(0, 8), vec(1, 8),
                vec(2, 8), vec(3, 8), vec(4, 1), vec(7, 8), vec(10, 8), vec(13, 8),
                vec(16, 4));
        table(OPT_HLO_CUSTOM_CALL, "StablehloCustomCallOptions", -1, str(0), str(2),
                vec(4, 4), vec(5, 1));
        table(OPT_HLO_REDUCE, "StablehloReduceOptions", -1, vec(0, 8));
        table(OPT_HLO_SCATTER, "StablehloScatterOptions", -1, vec(1, 8), vec(2, 8),
                vec(3, 8));
        table(OPT_HLO_DYNAMIC_SLICE, "StablehloDynamicSliceOptions", -1, vec(0, 8));
        table(OPT_HLO_PAD, "StablehloPadOptions", -1, vec(0, 8), vec(1, 8), vec(2, 8));
        table(OPT_HLO_DOT_GENERAL, "StablehloDotGeneralOptions", -1, vec(0, 8), vec(1, 8),
                vec(2, 8), vec(3, 8), vec(4, 4));
        table(OPT_HLO_REDUCE_WINDOW, "StablehloReduceWindowOptions", -1, vec(0, 8),
                vec(1, 8), vec(2, 8), vec(3, 8), vec(4, 8));
        table(OPT_HLO_GATHER, "StablehloGatherOptions", -1, vec(0, 8), vec(1, 8), vec(2, 8),
                vec(4, 8));
        table(OPT_HLO_TRANSPOSE, "StablehloTransposeOptions", -1, vec(0, 8));
        table(OPT_HLO_COMPOSITE, "StableHLOCompositeOptions", -1, str(0), vec(2, 1));
        table(OPT_HLO_CASE, "StablehloCaseOptions", -1, vec(0, 4));
    }

    /** Largest member id of each union this copier knows. */
    private static final int[] UNION_MAX = {126, 23, 3, 3};
    private static final String[] UNION_NAMES = {
        "BuiltinOptions", "BuiltinOptions2", "QuantizationDetails", "SparseIndexVector"
    };

    static String unionName(int union) {
        return UNION_NAMES[union];
    }

    /** The table type of member {@code member} of {@code union}, or -1 when unknown. */
    static int unionMember(int union, int member) {
        if (member < 1 || member > UNION_MAX[union]) {
            return -1;
        }
        switch (union) {
            case U_BUILTIN_OPTIONS:
                switch (member) {
                    case 3: return OPT_CONCAT_EMBEDDINGS;
                    case 8: return OPT_FULLY_CONNECTED;
                    case 17: return OPT_RESHAPE;
                    case 30: return OPT_SQUEEZE;
                    case 111: return OPT_VAR_HANDLE;
                    case 115: return OPT_BUCKETIZE;
                    default: return SCALAR_OPTIONS;
                }
            case U_BUILTIN_OPTIONS_2:
                switch (member) {
                    case 2: return OPT_HLO_BROADCAST_IN_DIM;
                    case 3: return OPT_HLO_SLICE;
                    case 4: return OPT_HLO_CONVOLUTION;
                    case 5: return OPT_HLO_CUSTOM_CALL;
                    case 6: return OPT_HLO_REDUCE;
                    case 7: return OPT_HLO_SCATTER;
                    case 9: return OPT_HLO_DYNAMIC_SLICE;
                    case 10: return OPT_HLO_PAD;
                    case 12: return OPT_HLO_DOT_GENERAL;
                    case 13: return OPT_HLO_REDUCE_WINDOW;
                    case 16: return OPT_HLO_GATHER;
                    case 17: return OPT_HLO_TRANSPOSE;
                    case 21: return OPT_HLO_COMPOSITE;
                    case 23: return OPT_HLO_CASE;
                    default: return SCALAR_OPTIONS;
                }
            case U_QUANTIZATION_DETAILS:
                return member == 1 ? CUSTOM_QUANTIZATION
                        : member == 2 ? BLOCKWISE_QUANTIZATION : MULTI_AXIS_QUANTIZATION;
            default:
                return member == 1 ? INT32_VECTOR : member == 2 ? UINT16_VECTOR : UINT8_VECTOR;
        }
    }

    private static final String[] TYPE_NAMES = {
        "FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING", "BOOL", "INT16", "COMPLEX64",
        "INT8", "FLOAT64", "COMPLEX128", "UINT64", "RESOURCE", "VARIANT", "UINT32", "UINT16",
        "INT4", "BFLOAT16", "INT2", "UINT4", "FLOAT8_E4M3FN", "FLOAT8_E5M2"
    };

    /** The TensorType's name, as the schema spells it. */
    static String tensorTypeName(int type) {
        return type >= 0 && type < TYPE_NAMES.length ? TYPE_NAMES[type] : "TYPE_" + type;
    }

    /** Element byte size of a TFLite TensorType, or 0 when it has none (or is sub-byte). */
    static int tensorTypeSize(int type) {
        switch (type) {
            case 0: return 4; // FLOAT32
            case 1: return 2; // FLOAT16
            case 2: return 4; // INT32
            case 3: return 1; // UINT8
            case 4: return 8; // INT64
            case 6: return 1; // BOOL
            case 7: return 2; // INT16
            case 8: return 8; // COMPLEX64
            case 9: return 1; // INT8
            case 10: return 8; // FLOAT64
            case 11: return 16; // COMPLEX128
            case 12: return 8; // UINT64
            case 15: return 4; // UINT32
            case 16: return 2; // UINT16
            case 18: return 2; // BFLOAT16
            case 21: return 1; // FLOAT8_E4M3FN
            case 22: return 1; // FLOAT8_E5M2
            default: return 0;
        }
    }
}
