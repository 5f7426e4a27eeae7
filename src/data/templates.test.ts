import { describe, expect, it } from 'vitest';
import { renderTemplate, resolveTemplate, TemplateError, templateFields, DEFAULT_TEMPLATES } from './templates';

describe('templates', () => {
  it('renders fields, escapes braces, stringifies values', () => {
    expect(renderTemplate('Q: {q}\nA:', { q: 'why?' })).toBe('Q: why?\nA:');
    expect(renderTemplate('{{literal}} {n} {ok} {list}', { n: 3, ok: true, list: ['a'] })).toBe('{literal} 3 true ["a"]');
    expect(renderTemplate('{ spaced }', { spaced: 'x' })).toBe('x');
  });
  it('missing fields are errors, not empty strings', () => {
    expect(() => renderTemplate('{a} {b}', { a: '1' })).toThrow(TemplateError);
    expect(() => renderTemplate('{a}', { a: null })).toThrow('missing field "a"');
  });
  it('syntax errors', () => {
    expect(() => renderTemplate('{a', {})).toThrow(/unclosed/);
    expect(() => renderTemplate('a}', {})).toThrow(/unmatched/);
    expect(() => renderTemplate('{}', {})).toThrow(/bad field name/);
  });
  it('a lone {field} resolves to the raw value', () => {
    expect(resolveTemplate('{choices}', { choices: ['x', 'y'] })).toEqual(['x', 'y']);
    expect(resolveTemplate('{label}', { label: 2 })).toBe(2);
    expect(resolveTemplate('#{label}', { label: 2 })).toBe('#2');
  });
  it('lists fields; defaults reference what they document', () => {
    expect(templateFields('{a}{b}{a}')).toEqual(['a', 'b']);
    expect(templateFields(DEFAULT_TEMPLATES.questionAnswer.prompt)).toEqual(['question']);
    expect(templateFields(DEFAULT_TEMPLATES.instruction.prompt)).toEqual(['instruction', 'input']);
  });
});
