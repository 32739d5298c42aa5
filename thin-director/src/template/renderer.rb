# Renders the ERB templates of one BOSH job for one instance, the way the BOSH director does
# (bosh-template's EvaluationContext, the director's SourceErb and JobTemplateRenderer), for the
# thin director's `template` module, which embeds this file and runs it with `ruby -e`.
#
# Standard input: JSON {"job": NAME, "spec": TEMPLATE SPEC (with "properties"),
#   "monit": BASE64 ERB, "templates": [{"source": PATH, "erb": BASE64 ERB}, ...]}.
# Standard output: JSON {"monit": BASE64 or null, "templates": {PATH: BASE64, ...},
#   "errors": ["Error filling in template '<source>' (line N: <message>)", ...]}.
# Contents travel base64-encoded so that any bytes survive JSON. Whatever a template prints goes to
# standard error. Every template gets a fresh context, so one cannot change what another sees.

require 'erb'
require 'json'
require 'ostruct'

Encoding.default_external = Encoding::UTF_8

module ThinDirectorTemplate
  # A required property is absent: BOSH's text, which names the property (or the alternatives) as
  # a Ruby array, e.g. Can't find property '["a.b"]'.
  class UnknownProperty < StandardError
    def initialize(names)
      super("Can't find property '#{names}'")
    end
  end

  # The thin director resolves no links.
  class LinksNotSupported < StandardError
    def initialize(name)
      super("Can't resolve link '#{name}': links are not supported by the thin director")
    end
  end

  # What a template sees: p, if_p, spec, name, index, properties, link, if_link.
  class EvaluationContext
    attr_reader :name, :index, :properties, :raw_properties, :spec

    def initialize(spec)
      @name = spec['job'].is_a?(Hash) ? spec['job']['name'] : nil
      @index = spec['index']
      @spec = openstruct(spec)
      @raw_properties = spec['properties'] || {}
      @properties = openstruct(@raw_properties)
    end

    def get_binding
      binding
    end

    # What Ruby prints for the context in a NameError: not its properties, which hold secrets.
    def inspect
      "#<#{self.class.name}>"
    end

    # p(name), p(name, default), p([names]), p([names], default): the first property set, else
    # the default, else UnknownProperty.
    def p(*args)
      names = Array(args[0])
      names.each do |name|
        value = lookup_property(@raw_properties, name)
        return value unless value.nil?
      end
      return args[1] if args.length == 2

      raise UnknownProperty, names
    end

    # Yields the values when every property is set; `.else` runs otherwise.
    def if_p(*names)
      values = names.map do |name|
        value = lookup_property(@raw_properties, name)
        return ActiveElseBlock.new(self) if value.nil?

        value
      end
      yield(*values)
      InactiveElseBlock.new
    end

    def link(name)
      raise LinksNotSupported, name
    end

    def if_link(name)
      raise LinksNotSupported, name
    end

    private

    def lookup_property(collection, name)
      return nil if collection.nil?

      name.split('.').reduce(collection) do |ref, key|
        return nil unless ref.is_a?(Hash)

        value = ref[key]
        return nil if value.nil?

        value
      end
    end

    def openstruct(object)
      case object
      when Hash then OpenStruct.new(object.transform_values { |value| openstruct(value) })
      when Array then object.map { |item| openstruct(item) }
      else object
      end
    end

    # Returned by if_p when a property is missing: `.else` runs its block.
    class ActiveElseBlock
      def initialize(context)
        @context = context
      end

      def else
        yield
      end

      def else_if_p(*names, &block)
        @context.if_p(*names, &block)
      end
    end

    # Returned by if_p when every property was set: `.else` does nothing.
    class InactiveElseBlock
      def else; end

      def else_if_p(*_names)
        InactiveElseBlock.new
      end
    end
  end

  module_function

  # Renders one template; returns [contents, nil] or [nil, BOSH's error text].
  def render(job, source, text, spec)
    filename = File.join(job, source)
    erb = ERB.new(text.dup.force_encoding(Encoding::UTF_8), trim_mode: '-')
    erb.filename = filename
    context = EvaluationContext.new(Marshal.load(Marshal.dump(spec)))
    [erb.result(context.get_binding), nil]
  rescue Exception => e # rubocop:disable Lint/RescueException -- as the director: any failure is reported
    [nil, error_text(filename, source, e)]
  end

  # "Error filling in template '<source>' (line N: <message>)", the director's SourceErb text. A
  # syntax error has no backtrace line in the template: its line is read from its message.
  def error_text(filename, source, error)
    message = error.message.to_s
    location = (error.backtrace || []).find { |line| line.include?(filename) }
    line = location ? location.split(':')[1] : nil
    if line.nil?
      match = message.each_line.map { |text| /\A#{Regexp.escape(filename)}:(\d+): ?(.*)/.match(text.chomp) }.compact.first
      line, message = match[1], match[2] if match
    end
    text = "Error filling in template '#{source}' (line #{line || '(unknown)'}: #{message})"
    text.dup.force_encoding(Encoding::UTF_8).scrub
  end

  def decode(text)
    text.unpack1('m0')
  end

  def encode(bytes)
    [bytes].pack('m0')
  end

  def main
    output = STDOUT.dup
    STDOUT.reopen(STDERR)
    STDIN.binmode
    input = JSON.parse(STDIN.read.force_encoding(Encoding::UTF_8))
    job = input.fetch('job')
    spec = input.fetch('spec')
    errors = []
    monit, error = render(job, 'monit', decode(input.fetch('monit')), spec)
    errors << error if error
    templates = {}
    input.fetch('templates').each do |template|
      source = template.fetch('source')
      contents, error = render(job, source, decode(template.fetch('erb')), spec)
      if error
        errors << error
      else
        templates[source] = encode(contents)
      end
    end
    result = { 'monit' => monit && encode(monit), 'templates' => templates, 'errors' => errors }
    output.write(JSON.generate(result))
    output.flush
  end
end

ThinDirectorTemplate.main
