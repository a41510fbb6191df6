/** @public */
export type AeadAlgorithm = "AES128GCM" | "CHACHA20POLY1305" | "AES256GCM";
export interface Aead {
    encrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array>;
    decrypt(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array>;
}
