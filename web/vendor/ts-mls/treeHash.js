import { uint32Encoder, decodeUint32 } from "./codec/number.js";
import { optionalEncoder, decodeOptional } from "./codec/optional.js";
import { mapDecoders, flatMapDecoder } from "./codec/tlsDecoder.js";
import { contramapBufferEncoders, encode } from "./codec/tlsEncoder.js";
import { varLenDataEncoder, decodeVarLenData } from "./codec/variableLength.js";
import { leafNodeEncoder, decodeLeafNode } from "./leafNode.js";
import { InternalError } from "./mlsError.js";
import { nodeTypeEncoder, decodeNodeType } from "./nodeType.js";
import { parentNodeEncoder, decodeParentNode } from "./parentNode.js";
import { rootFromNodeWidth, isLeaf, nodeToLeafIndex, left, right } from "./treemath.js";
export const leafNodeHashInputEncoder = contramapBufferEncoders([nodeTypeEncoder, uint32Encoder, optionalEncoder(leafNodeEncoder)], (input) => [input.nodeType, input.leafIndex, input.leafNode]);
export const encodeLeafNodeHashInput = encode(leafNodeHashInputEncoder);
export const decodeLeafNodeHashInput = mapDecoders([decodeUint32, decodeOptional(decodeLeafNode)], (leafIndex, leafNode) => ({
    nodeType: "leaf",
    leafIndex,
    leafNode,
}));
export const parentNodeHashInputEncoder = contramapBufferEncoders([nodeTypeEncoder, optionalEncoder(parentNodeEncoder), varLenDataEncoder, varLenDataEncoder], (input) => [input.nodeType, input.parentNode, input.leftHash, input.rightHash]);
export const encodeParentNodeHashInput = encode(parentNodeHashInputEncoder);
export const decodeParentNodeHashInput = mapDecoders([decodeOptional(decodeParentNode), decodeVarLenData, decodeVarLenData], (parentNode, leftHash, rightHash) => ({
    nodeType: "parent",
    parentNode,
    leftHash,
    rightHash,
}));
export const treeHashInputEncoder = (input) => {
    switch (input.nodeType) {
        case "leaf":
            return leafNodeHashInputEncoder(input);
        case "parent":
            return parentNodeHashInputEncoder(input);
    }
};
export const encodeTreeHashInput = encode(treeHashInputEncoder);
export const decodeTreeHashInput = flatMapDecoder(decodeNodeType, (nodeType) => {
    switch (nodeType) {
        case "leaf":
            return decodeLeafNodeHashInput;
        case "parent":
            return decodeParentNodeHashInput;
    }
});
export async function treeHashRoot(tree, h) {
    return treeHash(tree, rootFromNodeWidth(tree.length), h);
}
// Conclave patch (tree hash cache). ts-mls hashes every node of the ratchet tree from scratch
// for each tree hash, twice per commit: at 100 members over a quarter of the CPU of processing
// a commit, most of it TLS-encoding the leaves. Nodes are immutable here (every change puts a
// new node object into a copy of the tree), so a node's hash is remembered per node object
// (weakly: it goes with the node): a leaf's with its index, a parent's with the two child
// hashes it was computed from, and reused only when those are equal. Blank nodes are hashed
// by their content: a blank leaf's hash by its index, a blank parent's by its two child
// hashes (a bounded map per hash function, emptied when full). The node objects are frozen
// when cached, so that a change in place (which the cache would miss) fails loudly instead.
// The hashes are the same as before, byte for byte.
const leafHashCache = new WeakMap();
const parentHashCache = new WeakMap();
const blankHashCache = new WeakMap(); // h -> Map(key -> hash)
const BLANK_HASH_CACHE_MAX = 4096;
function blankCache(h) {
    let cache = blankHashCache.get(h);
    if (cache === undefined) {
        cache = new Map();
        blankHashCache.set(h, cache);
    }
    else if (cache.size >= BLANK_HASH_CACHE_MAX)
        cache.clear();
    return cache;
}
function bytesKey(prefix, ...parts) {
    let key = prefix;
    for (const part of parts)
        key += String.fromCharCode.apply(null, part) + "|";
    return key;
}
function bytesEqual(a, b) {
    if (a.length !== b.length)
        return false;
    for (let i = 0; i < a.length; i++)
        if (a[i] !== b[i])
            return false;
    return true;
}
export async function treeHash(tree, subtreeIndex, h) {
    if (isLeaf(subtreeIndex)) {
        const leafNode = tree[subtreeIndex];
        if (leafNode?.nodeType === "parent")
            throw new InternalError("Somehow found parent node in leaf position");
        const leafIndex = nodeToLeafIndex(subtreeIndex);
        if (leafNode === undefined) {
            const cache = blankCache(h);
            const key = "leaf " + leafIndex;
            let hash = cache.get(key);
            if (hash === undefined) {
                hash = await h.digest(encode(leafNodeHashInputEncoder)({ nodeType: "leaf", leafIndex, leafNode: undefined }));
                cache.set(key, hash);
            }
            return hash;
        }
        const cached = leafHashCache.get(leafNode.leaf);
        if (cached !== undefined && cached.leafIndex === leafIndex && cached.h === h)
            return cached.hash;
        const input = encode(leafNodeHashInputEncoder)({
            nodeType: "leaf",
            leafIndex,
            leafNode: leafNode?.leaf,
        });
        const hash = await h.digest(input);
        Object.freeze(leafNode.leaf);
        leafHashCache.set(leafNode.leaf, { leafIndex, h, hash });
        return hash;
    }
    else {
        const parentNode = tree[subtreeIndex];
        if (parentNode?.nodeType === "leaf")
            throw new InternalError("Somehow found leaf node in parent position");
        const leftHash = await treeHash(tree, left(subtreeIndex), h);
        const rightHash = await treeHash(tree, right(subtreeIndex), h);
        if (parentNode === undefined) {
            const cache = blankCache(h);
            const key = bytesKey("parent ", leftHash, rightHash);
            let hash = cache.get(key);
            if (hash === undefined) {
                hash = await h.digest(encode(parentNodeHashInputEncoder)({ nodeType: "parent", parentNode: undefined, leftHash, rightHash }));
                cache.set(key, hash);
            }
            return hash;
        }
        const cached = parentHashCache.get(parentNode.parent);
        if (cached !== undefined && cached.h === h && bytesEqual(cached.leftHash, leftHash) && bytesEqual(cached.rightHash, rightHash))
            return cached.hash;
        const input = {
            nodeType: "parent",
            parentNode: parentNode?.parent,
            leftHash: leftHash,
            rightHash: rightHash,
        };
        const hash = await h.digest(encode(parentNodeHashInputEncoder)(input));
        Object.freeze(parentNode.parent);
        parentHashCache.set(parentNode.parent, { h, leftHash, rightHash, hash });
        return hash;
    }
}
