export * from './types';
export * from './errors';
export * from './utf8';
export * from './random';
export * from './templates';
export * from './read';
export * from './batch';
export * from './validate';
