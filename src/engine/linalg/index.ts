export * from './matmul';
export * from './rng';
export * from './qr';
export * from './eig';
export * from './svd';
