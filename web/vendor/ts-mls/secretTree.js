import { decodeUint32, uint32Encoder } from "./codec/number.js";
import { mapDecoders } from "./codec/tlsDecoder.js";
import { contramapBufferEncoders } from "./codec/tlsEncoder.js";
import { decodeNumberRecord, decodeVarLenData, decodeVarLenType, numberRecordEncoder, varLenDataEncoder, varLenTypeEncoder, } from "./codec/variableLength.js";
import { expandWithLabel, deriveTreeSecret } from "./crypto/kdf.js";
import { InternalError, UsageError, ValidationError } from "./mlsError.js";
import { nodeWidth, root, right, isLeaf, left, leafToNodeIndex, toLeafIndex, rootFromNodeWidth } from "./treemath.js";
export const generationSecretEncoder = contramapBufferEncoders([varLenDataEncoder, uint32Encoder, numberRecordEncoder(uint32Encoder, varLenDataEncoder)], (gs) => [gs.secret, gs.generation, gs.unusedGenerations]);
export const decodeGenerationSecret = mapDecoders([decodeVarLenData, decodeUint32, decodeNumberRecord(decodeUint32, decodeVarLenData)], (secret, generation, unusedGenerations) => ({
    secret,
    generation,
    unusedGenerations,
}));
export const secretTreeNodeEncoder = contramapBufferEncoders([generationSecretEncoder, generationSecretEncoder], (node) => [node.handshake, node.application]);
export const decodeSecretTreeNode = mapDecoders([decodeGenerationSecret, decodeGenerationSecret], (handshake, application) => ({
    handshake,
    application,
}));
const secretTreeEncoderOfNodes = varLenTypeEncoder(secretTreeNodeEncoder);
// Conclave patch (lazy secret tree): a tree whose nodes are not all derived has no encoding.
export const secretTreeEncoder = (tree) => {
    if (tree.some((node) => node === undefined || node.treeSecret !== undefined))
        throw new UsageError("this ts-mls derives the secret tree lazily (Conclave patch): group states with a secret tree cannot be encoded");
    return secretTreeEncoderOfNodes(tree);
};
export const decodeSecretTree = decodeVarLenType(decodeSecretTreeNode);
export function allSecretTreeValues(tree) {
    const arr = new Array(tree.length * 2);
    for (const node of tree) {
        // Conclave patch (lazy secret tree): not yet derived, or a tree secret not yet expanded
        if (node === undefined)
            continue;
        if (node.treeSecret !== undefined) {
            arr.push(node.treeSecret);
            continue;
        }
        arr.push(node.application.secret);
        arr.push(node.handshake.secret);
        for (const gen of Object.values(node.application.unusedGenerations)) {
            arr.push(gen);
        }
        for (const gen of Object.values(node.handshake.unusedGenerations)) {
            arr.push(gen);
        }
    }
    return arr;
}
// Conclave patch (lazy secret tree). ts-mls derived the whole secret tree at every epoch:
// 2 x (2n - 1) ratchet roots and 2n - 2 child secrets for n leaves, about 760 HKDF calls per
// epoch at 100 members, a quarter of the CPU of processing a commit. RFC 9420 section 9 lets a
// member derive nodes on demand and asks it to delete a node's secret once its children are
// derived. Here the tree starts with only the root's secret (`{ treeSecret }`); the first use
// of a leaf expands the nodes on the way from the root down to it (deleting each expanded
// parent) and turns the leaf's secret into its handshake and application ratchets. A node is
// undefined (not derived yet, or deleted), `{ treeSecret }` or `{ handshake, application }` (a
// leaf in use). The secrets derived are the same as before, byte for byte.
export async function createSecretTree(leafWidth, encryptionSecret, kdf) {
    const tree = new Array(nodeWidth(leafWidth)).fill(undefined);
    tree[root(leafWidth)] = { treeSecret: encryptionSecret };
    return tree;
}
/** The tree with the ratchets of the leaf at node `index` derived, and that leaf. */
async function deriveLeaf(tree, index, kdf) {
    if (!Number.isInteger(index) || index < 0 || index >= tree.length || !isLeaf(index))
        throw new InternalError("Bad node index for secret tree");
    const existing = tree[index];
    if (existing !== undefined && existing.treeSecret === undefined)
        return [tree, existing];
    const copy = tree.slice();
    let nodeIndex = rootFromNodeWidth(tree.length);
    while (nodeIndex !== index) {
        const node = copy[nodeIndex];
        if (node !== undefined) {
            if (node.treeSecret === undefined)
                throw new InternalError("Leaf ratchet in a parent position of the secret tree");
            copy[left(nodeIndex)] = { treeSecret: await expandWithLabel(node.treeSecret, "tree", new TextEncoder().encode("left"), kdf.size, kdf) };
            copy[right(nodeIndex)] = { treeSecret: await expandWithLabel(node.treeSecret, "tree", new TextEncoder().encode("right"), kdf.size, kdf) };
            copy[nodeIndex] = undefined;
        }
        nodeIndex = index < nodeIndex ? left(nodeIndex) : right(nodeIndex);
    }
    const leaf = copy[index];
    if (leaf === undefined)
        throw new InternalError("Secret tree node already deleted");
    const application = await createRatchetRoot(leaf.treeSecret, "application", kdf);
    const handshake = await createRatchetRoot(leaf.treeSecret, "handshake", kdf);
    const derived = { handshake, application };
    copy[index] = derived;
    return [copy, derived];
}
export async function deriveNonce(secret, generation, cs) {
    return await deriveTreeSecret(secret, "nonce", generation, cs.hpke.nonceLength, cs.kdf);
}
export async function deriveKey(secret, generation, cs) {
    return await deriveTreeSecret(secret, "key", generation, cs.hpke.keyLength, cs.kdf);
}
export async function ratchetUntil(current, desiredGen, config, kdf) {
    const generationDifference = desiredGen - current.generation;
    if (generationDifference > config.maximumForwardRatchetSteps)
        throw new ValidationError("Desired generation too far in the future");
    const consumed = [];
    let result = { ...current };
    for (let i = 0; i < generationDifference; i++) {
        const nextSecret = await deriveTreeSecret(result.secret, "secret", result.generation, kdf.size, kdf);
        const [updated, old] = updateUnusedGenerations(result, config.retainKeysForGenerations);
        consumed.push(...old);
        result = {
            secret: nextSecret,
            generation: result.generation + 1,
            unusedGenerations: updated,
        };
    }
    return [result, consumed];
}
function updateUnusedGenerations(s, retainGenerationsMax) {
    const withNew = { ...s.unusedGenerations, [s.generation]: s.secret };
    const generations = Object.keys(withNew);
    const result = generations.length >= retainGenerationsMax ? removeOldGenerations(withNew, retainGenerationsMax) : [withNew, []];
    return result;
}
function removeOldGenerations(unusedGenerations, max) {
    const generations = Object.keys(unusedGenerations)
        .map(Number)
        .sort((a, b) => a - b);
    const cutoff = generations.length - max;
    const consumed = new Array();
    const record = {};
    for (const [n, gen] of generations.entries()) {
        const value = unusedGenerations[gen];
        if (n < cutoff) {
            consumed.push(value);
        }
        else {
            record[gen] = value;
        }
    }
    return [record, consumed];
}
export async function derivePrivateMessageNonce(secret, generation, reuseGuard, cs) {
    const nonce = await deriveNonce(secret, generation, cs);
    if (nonce.length >= 4 && reuseGuard.length >= 4) {
        for (let i = 0; i < 4; i++) {
            nonce[i] ^= reuseGuard[i];
        }
    }
    else
        throw new ValidationError("Reuse guard or nonce incorrect length");
    return nonce;
}
export async function ratchetToGeneration(secretTree, senderData, contentType, config, cs) {
    const index = leafToNodeIndex(toLeafIndex(senderData.leafIndex));
    const [tree, node] = await deriveLeaf(secretTree, index, cs.kdf); // Conclave patch (lazy secret tree)
    const ratchet = ratchetForContentType(node, contentType);
    if (ratchet.generation > senderData.generation) {
        const desired = ratchet.unusedGenerations[senderData.generation];
        if (desired !== undefined) {
            const { [senderData.generation]: _, ...removedDesiredGen } = ratchet.unusedGenerations;
            const ratchetState = { ...ratchet, unusedGenerations: removedDesiredGen };
            return await createRatchetResultWithSecret(node, index, desired, senderData.generation, senderData.reuseGuard, tree, contentType, [], cs, ratchetState);
        }
        throw new ValidationError("Desired gen in the past");
    }
    const [currentSecret, consumed] = await ratchetUntil(ratchetForContentType(node, contentType), senderData.generation, config, cs.kdf);
    return createRatchetResult(node, index, currentSecret, senderData.reuseGuard, tree, contentType, consumed, cs);
}
export async function consumeRatchet(secretTree, index, contentType, cs) {
    const [tree, node] = await deriveLeaf(secretTree, index, cs.kdf); // Conclave patch (lazy secret tree)
    const currentSecret = ratchetForContentType(node, contentType);
    const reuseGuard = cs.rng.randomBytes(4);
    return createRatchetResult(node, index, currentSecret, reuseGuard, tree, contentType, [], cs);
}
async function createRatchetResult(node, index, currentSecret, reuseGuard, tree, contentType, consumed, cs) {
    const nextSecret = await deriveTreeSecret(currentSecret.secret, "secret", currentSecret.generation, cs.kdf.size, cs.kdf);
    const ratchetState = { ...currentSecret, secret: nextSecret, generation: currentSecret.generation + 1 };
    return await createRatchetResultWithSecret(node, index, currentSecret.secret, currentSecret.generation, reuseGuard, tree, contentType, consumed, cs, ratchetState);
}
async function createRatchetResultWithSecret(node, index, secret, generation, reuseGuard, tree, contentType, consumed, cs, ratchetState) {
    const { nonce, key } = await createKeyAndNonce(secret, generation, reuseGuard, cs);
    const newNode = contentType === "application" ? { ...node, application: ratchetState } : { ...node, handshake: ratchetState };
    const newTree = tree.slice();
    newTree[index] = newNode;
    return {
        generation: generation,
        reuseGuard,
        nonce,
        key,
        newTree,
        consumed: [...consumed, secret, key],
    };
}
async function createKeyAndNonce(secret, generation, reuseGuard, cs) {
    const key = await deriveKey(secret, generation, cs);
    const nonce = await derivePrivateMessageNonce(secret, generation, reuseGuard, cs);
    return { nonce, key };
}
function ratchetForContentType(node, contentType) {
    switch (contentType) {
        case "application":
            return node.application;
        case "proposal":
            return node.handshake;
        case "commit":
            return node.handshake;
    }
}
async function createRatchetRoot(node, label, kdf) {
    const secret = await expandWithLabel(node, label, new Uint8Array(), kdf.size, kdf);
    return { secret: secret, generation: 0, unusedGenerations: {} };
}
